//! Reads the image size declared inside JPEG-LS codestreams, and the segment
//! table of RLE frames, so a corrupt stream cannot make its decoder allocate
//! beyond the size the data set declares (and we already bounded). The JPEG 2000
//! decoder checks OpenJPEG's reading of the header itself (see `j2k`).

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
    use super::{check_rle_frame, packbits_len};

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
