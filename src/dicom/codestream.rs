//! Reads the image size declared inside JPEG 2000 and JPEG-LS codestreams, so
//! a corrupt stream cannot make its decoder allocate beyond the size the
//! data set declares (and we already bounded).

/// Width, height and component count from the first frame header found.
pub(crate) fn dimensions(stream: &[u8]) -> Option<(u32, u32, u16)> {
    j2k_siz(stream).or_else(|| jpeg_ls_sof(stream))
}

const J2K_SOC_SIZ: [u8; 4] = [0xFF, 0x4F, 0xFF, 0x51];

/// The SIZ segment, also found inside a JP2 file's codestream box.
fn j2k_siz(stream: &[u8]) -> Option<(u32, u32, u16)> {
    let start = stream.windows(4).position(|w| w == J2K_SOC_SIZ)? + 4;
    let siz = stream.get(start..start + 38)?;
    let be32 = |at: usize| u32::from_be_bytes([siz[at], siz[at + 1], siz[at + 2], siz[at + 3]]);
    let width = be32(4).checked_sub(be32(12))?;
    let height = be32(8).checked_sub(be32(16))?;
    let components = u16::from_be_bytes([siz[36], siz[37]]);
    Some((width, height, components))
}

/// JPEG-LS frame header (SOF55), reached by skipping marker segments.
fn jpeg_ls_sof(stream: &[u8]) -> Option<(u32, u32, u16)> {
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
        if marker == 0xF7 {
            let sof = stream.get(pos + 4..pos + 10)?;
            let height = u32::from(u16::from_be_bytes([sof[1], sof[2]]));
            let width = u32::from(u16::from_be_bytes([sof[3], sof[4]]));
            return Some((width, height, u16::from(sof[5])));
        }
        if marker == 0xDA {
            return None;
        }
        pos += 2 + len;
    }
}
