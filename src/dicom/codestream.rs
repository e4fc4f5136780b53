//! Reads the image size declared inside JPEG-LS codestreams, the segment table
//! of RLE frames and the code-block sizes of JPEG 2000 codestreams, so a corrupt
//! or hostile stream cannot make its decoder allocate far beyond the size the
//! data set declares (and we already bounded). The JPEG 2000 decoder checks
//! OpenJPEG's reading of the image size itself (see `j2k`).

/// Width, height and component count from a JPEG-LS frame header (SOF55).
pub(crate) fn jpeg_ls_sof(stream: &[u8]) -> Option<(u32, u32, u16)> {
    let sof = jpeg_ls_segment(stream, SOF55)?.get(..6)?;
    let height = u32::from(u16::from_be_bytes([sof[1], sof[2]]));
    let width = u32::from(u16::from_be_bytes([sof[3], sof[4]]));
    Some((width, height, u16::from(sof[5])))
}

/// Whether a JPEG-LS stream codes each component in a scan of its own
/// (interleave mode none), which CharLS returns plane by plane.
pub(crate) fn jpeg_ls_planar(stream: &[u8]) -> bool {
    let scan_components = jpeg_ls_segment(stream, SOS).and_then(|sos| sos.first().copied());
    scan_components == Some(1) && jpeg_ls_sof(stream).is_some_and(|(_, _, n)| n > 1)
}

const SOF55: u8 = 0xF7;
const SOS: u8 = 0xDA;

/// The payload of the first `wanted` marker segment up to the first scan's
/// header, reached by skipping marker segments.
fn jpeg_ls_segment(stream: &[u8], wanted: u8) -> Option<&[u8]> {
    if stream.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut pos = 2;
    loop {
        while *stream.get(pos)? != 0xFF || *stream.get(pos + 1)? == 0xFF {
            pos += 1;
        }
        let marker = *stream.get(pos + 1)?;
        let len = usize::from(u16::from_be_bytes([
            *stream.get(pos + 2)?,
            *stream.get(pos + 3)?,
        ]));
        if marker == wanted {
            return stream.get(pos + 4..pos + 2 + len);
        }
        if marker == SOS {
            return None;
        }
        pos += 2 + len;
    }
}

/// A JP2 file's signature box: some DICOM encoders wrap the codestream in one.
pub(crate) const JP2_SIGNATURE: [u8; 12] = [0, 0, 0, 12, b'j', b'P', b' ', b' ', 13, 10, 0x87, 10];

/// The smallest code-block, in samples, that a JPEG 2000 codestream's COD or
/// COC segments declare, in its main header or any tile-part header, as far
/// as the headers can be read (a decoder may allocate for what came before a
/// cut or corrupt one).
pub(crate) fn j2k_smallest_code_block(stream: &[u8]) -> Option<u32> {
    let mut smallest: Option<u32> = None;
    walk_code_blocks(j2k_codestream(stream)?, &mut |samples| {
        smallest = Some(smallest.map_or(samples, |s| s.min(samples)));
    });
    smallest
}

/// Calls `found` with the code-block size of each COD and COC segment, up to
/// the last tile-part header or the first segment it cannot read.
fn walk_code_blocks(stream: &[u8], found: &mut impl FnMut(u32)) -> Option<()> {
    let mut walk = MarkerWalk { stream, pos: 2 };
    let mut components = 0;
    let mut note = |marker, payload: &[u8], components| {
        if let Some(samples) = declared_code_block(marker, payload, components) {
            found(samples);
        }
    };
    // The main header, up to the first tile-part.
    let mut tile_part = loop {
        let at = walk.pos;
        match walk.segment()? {
            (SOT, sot) => break (at, sot),
            (SIZ, siz) => components = be16(siz.get(36..38)?),
            (marker, payload) => note(marker, payload, components),
        }
    };
    // Each tile-part: SOT, its header's segments up to SOD, then its data.
    loop {
        let (start, sot) = tile_part;
        let length = be32(sot.get(2..6)?) as usize;
        while stream.get(walk.pos..walk.pos + 2)? != [0xFF, SOD] {
            let (marker, payload) = walk.segment()?;
            note(marker, payload, components);
        }
        // A length of 0 is the last tile-part, running to the end. One that ends
        // inside its own header is corrupt; stopping there keeps the walk linear.
        let next = start.checked_add(length)?;
        if length == 0 || next < walk.pos {
            return Some(());
        }
        walk.pos = next;
        if stream.get(walk.pos..walk.pos + 2) != Some(&[0xFF, SOT]) {
            return Some(());
        }
        tile_part = (walk.pos, walk.segment()?.1);
    }
}

const SOC: [u8; 2] = [0xFF, 0x4F];
const SIZ: u8 = 0x51;
const COD: u8 = 0x52;
const COC: u8 = 0x53;
const SOT: u8 = 0x90;
const SOD: u8 = 0x93;

/// The codestream itself: the stream, or a JP2 file's codestream box.
fn j2k_codestream(stream: &[u8]) -> Option<&[u8]> {
    if stream.starts_with(&SOC) {
        return Some(stream);
    }
    if !stream.starts_with(&JP2_SIGNATURE) {
        return None;
    }
    let mut pos = 0;
    loop {
        let end = match be32(stream.get(pos..pos + 4)?) as usize {
            0 => stream.len(),
            length @ 8.. => pos.checked_add(length)?,
            _ => return None,
        };
        if stream.get(pos + 4..pos + 8)? == b"jp2c" {
            return stream.get(pos + 8..end).filter(|s| s.starts_with(&SOC));
        }
        pos = end;
    }
}

/// Marker segments one after another, each with its length.
struct MarkerWalk<'a> {
    stream: &'a [u8],
    pos: usize,
}

impl<'a> MarkerWalk<'a> {
    fn segment(&mut self) -> Option<(u8, &'a [u8])> {
        let [0xFF, marker] = *self.stream.get(self.pos..self.pos + 2)? else {
            return None;
        };
        let length = usize::from(be16(self.stream.get(self.pos + 2..self.pos + 4)?)).max(2);
        let payload = self.stream.get(self.pos + 4..self.pos + 2 + length)?;
        self.pos += 2 + length;
        Some((marker, payload))
    }
}

/// The code-block samples a COD or COC segment declares: each side is 2^(xcb + 2).
/// COD's SPcod follows Scod and SGcod; COC's SPcoc follows Ccoc (two bytes past
/// 256 components) and Scoc. Both begin with the decomposition levels.
fn declared_code_block(marker: u8, payload: &[u8], components: u16) -> Option<u32> {
    let at = match marker {
        COD => 6,
        COC if components > 256 => 4,
        COC => 3,
        _ => return None,
    };
    let exponents = payload.get(at..at + 2)?;
    1u32.checked_shl(u32::from(exponents[0]) + u32::from(exponents[1]) + 4)
}

fn be16(bytes: &[u8]) -> u16 {
    u16::from_be_bytes([bytes[0], bytes[1]])
}

fn be32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// An RLE Lossless frame starts with 16 little-endian words: the segment count,
/// then up to 15 segment offsets (PS3.5 G.5). dicom-rs allocates a word per
/// declared segment before looking further, so a corrupt count (up to 2³²)
/// must not reach it, and it indexes each decoded segment up to `pixels` bytes
/// (a panic when one decodes short). `needed` is one segment per byte of each sample.
pub(crate) fn check_rle_frame(fragment: &[u8], needed: usize, pixels: usize) -> Result<(), String> {
    let word = |i: usize| {
        let b = fragment.get(4 * i..4 * i + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let header: Vec<usize> = (0..16)
        .map(word)
        .collect::<Option<_>>()
        .ok_or("the RLE header is cut short")?;
    let count = header[0];
    if !(needed..=15).contains(&count) {
        return Err(format!(
            "the RLE header declares {count} segment(s), the image needs {needed}"
        ));
    }
    let offsets = &header[1..=count];
    if offsets.windows(2).any(|w| w[0] > w[1]) || offsets[count - 1] > fragment.len() {
        return Err(format!(
            "the RLE segment offsets {offsets:?} are out of order or past the frame's {} bytes",
            fragment.len()
        ));
    }
    for i in 0..needed {
        let end = offsets.get(i + 1).copied().unwrap_or(fragment.len());
        let decoded = packbits_len(&fragment[offsets[i]..end]);
        if decoded < pixels {
            return Err(format!(
                "RLE segment {i} decodes to {decoded} bytes, the frame has {pixels} pixels"
            ));
        }
    }
    Ok(())
}

/// The bytes a PackBits segment decodes to, counted as dicom-rs's reader (from
/// image-tiff) decodes it: a literal run cut off by the segment's end yields what
/// is there, a repeat without its byte ends the segment.
fn packbits_len(segment: &[u8]) -> usize {
    let (mut at, mut decoded) = (0, 0);
    while let Some(&header) = segment.get(at) {
        at += 1;
        match header as i8 {
            -128 => {}
            run @ 0.. => {
                let literal = run as usize + 1;
                decoded += literal.min(segment.len() - at);
                at += literal;
            }
            repeat if at < segment.len() => {
                decoded += (1 - isize::from(repeat)) as usize;
                at += 1;
            }
            _ => break,
        }
    }
    decoded
}

#[cfg(test)]
mod tests {
    use super::{JP2_SIGNATURE, check_rle_frame, j2k_smallest_code_block, packbits_len};

    /// A marker segment: marker, length, payload.
    fn segment(marker: u8, payload: &[u8]) -> Vec<u8> {
        let length = (payload.len() as u16 + 2).to_be_bytes();
        [&[0xFF, marker][..], &length, payload].concat()
    }

    /// COD with code-block exponents `xcb`, `ycb` (sides of 2^(e + 2) samples).
    fn cod(xcb: u8, ycb: u8) -> Vec<u8> {
        segment(0x52, &[0, 0, 0, 1, 0, 5, xcb, ycb, 0, 1])
    }

    /// A tile-part whose header holds `header`, with 4 bytes of data.
    fn tile_part(header: &[u8]) -> Vec<u8> {
        let length = (12 + header.len() + 2 + 4) as u32;
        let sot = [&[0, 0][..], &length.to_be_bytes(), &[0, 1]].concat();
        [
            segment(0x90, &sot),
            header.to_vec(),
            vec![0xFF, 0x93, 1, 2, 3, 4],
        ]
        .concat()
    }

    /// SOC, SIZ of one component, `main` header segments, `tile_parts`, EOC.
    fn codestream(main: &[u8], tile_parts: &[Vec<u8>]) -> Vec<u8> {
        let mut siz = vec![0; 36];
        siz.extend_from_slice(&[0, 1, 15, 1, 1]);
        let parts = tile_parts.concat();
        [
            &[0xFF, 0x4F][..],
            &segment(0x51, &siz),
            main,
            &parts,
            &[0xFF, 0xD9],
        ]
        .concat()
    }

    #[test]
    fn j2k_code_blocks_are_read_from_the_main_and_tile_part_headers() {
        // 64x64 in the main header.
        let plain = codestream(&cod(4, 4), &[tile_part(&[])]);
        assert_eq!(j2k_smallest_code_block(&plain), Some(64 * 64));
        // A COC for component 0: 8x8.
        let coc = segment(0x53, &[0, 0, 5, 1, 1, 0, 1]);
        let with_coc = codestream(&[cod(4, 4), coc].concat(), &[tile_part(&[])]);
        assert_eq!(j2k_smallest_code_block(&with_coc), Some(8 * 8));
        // A second tile-part's own COD: 4x4, found by walking the first one's length.
        let tiles = [tile_part(&[]), tile_part(&cod(0, 0))];
        let in_tile = codestream(&cod(4, 4), &tiles);
        assert_eq!(j2k_smallest_code_block(&in_tile), Some(4 * 4));
        // The same codestream in a JP2 file's codestream box.
        let boxed = |kind: &[u8], payload: &[u8]| {
            [&(8 + payload.len() as u32).to_be_bytes()[..], kind, payload].concat()
        };
        let jp2 = [
            JP2_SIGNATURE.to_vec(),
            boxed(b"ftyp", b"jp2 \0\0\0\0jp2 "),
            boxed(b"jp2c", &in_tile),
        ]
        .concat();
        assert_eq!(j2k_smallest_code_block(&jp2), Some(4 * 4));
        // Cut inside the second tile-part's COD: what the headers before it say.
        let cut = &in_tile[..in_tile.len() - 12];
        assert_eq!(j2k_smallest_code_block(cut), Some(64 * 64));
        // A first tile-part whose length (Psot) ends inside its own header: the
        // walk stops there rather than step back.
        let mut short = tile_part(&[]);
        short[6..10].copy_from_slice(&2u32.to_be_bytes());
        let stopped = codestream(&cod(4, 4), &[short, tile_part(&cod(0, 0))]);
        assert_eq!(j2k_smallest_code_block(&stopped), Some(64 * 64));
        // Not JPEG 2000 at all.
        assert_eq!(j2k_smallest_code_block(&[0xFF, 0xD8, 0xFF, 0xF7]), None);
    }

    /// A frame of `len` bytes whose header declares `count` and `offsets`.
    fn frame(count: u32, offsets: &[u32], len: usize) -> Vec<u8> {
        let mut bytes = vec![0u8; len.max(64)];
        bytes[..4].copy_from_slice(&count.to_le_bytes());
        for (i, offset) in offsets.iter().enumerate() {
            bytes[4 + 4 * i..8 + 4 * i].copy_from_slice(&offset.to_le_bytes());
        }
        bytes.truncate(len);
        bytes
    }

    #[test]
    fn rle_headers_are_checked_before_the_decoder_sees_them() {
        // Zero bytes are literal runs of one: 36 and 100 bytes decode to 18 and 50.
        assert_eq!(check_rle_frame(&frame(2, &[64, 100], 200), 2, 18), Ok(()));
        assert_eq!(check_rle_frame(&frame(3, &[64, 64, 90], 90), 2, 0), Ok(()));
        let rejected = [
            (frame(2, &[64, 100], 63), "cut short"),
            (frame(u32::MAX, &[64], 200), "4294967295 segment(s)"),
            (frame(16, &[64], 200), "16 segment(s)"),
            (frame(1, &[64], 200), "1 segment(s), the image needs 2"),
            (frame(2, &[100, 64], 200), "out of order"),
            (frame(2, &[64, 201], 200), "past the frame's 200 bytes"),
            (
                frame(2, &[64, 100], 200),
                "segment 0 decodes to 18 bytes, the frame has 19",
            ),
        ];
        for (bytes, expected) in rejected {
            let message = check_rle_frame(&bytes, 2, 19).expect_err(expected);
            assert!(message.contains(expected), "{message}");
        }
    }

    #[test]
    fn packbits_lengths_follow_the_decoder() {
        assert_eq!(packbits_len(&[]), 0);
        assert_eq!(packbits_len(&[2, b'a', b'b', b'c']), 3); // literal of 3
        assert_eq!(packbits_len(&[2, b'a']), 1); // literal cut short
        assert_eq!(packbits_len(&[0xFE, b'x']), 3); // -2: repeat 3 times
        assert_eq!(packbits_len(&[0x81, b'x', 0x80, 0, b'y']), 128 + 1); // -127, no-op, literal 1
        assert_eq!(packbits_len(&[0xFF]), 0); // a repeat without its byte
    }
}
