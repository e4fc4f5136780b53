//! Colour rendering: RGB as stored, YBR_FULL(_422) → RGB, PALETTE COLOR
//! through its (possibly segmented) lookup tables.

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use image::RgbImage;

use super::attributes::{Object, lut_descriptor, lut_words};
use super::decode::{Frame, ImageInfo, Photometric};
use crate::error::{Error, Result};

pub(crate) fn render_colour(info: &ImageInfo, frame: &Frame) -> Result<RgbImage> {
    let shift = info.bits_stored.saturating_sub(8);
    let eight_bit = frame
        .samples
        .iter()
        .map(|&v| (v.max(0) >> shift).min(255) as u8);
    let ybr = !frame.codec_rgb
        && matches!(
            info.photometric,
            Photometric::YbrFull | Photometric::YbrFull422
        );
    let rgb: Vec<u8> = if ybr {
        let ybr: Vec<u8> = eight_bit.collect();
        ybr.chunks_exact(3)
            .flat_map(|p| ybr_full_to_rgb(p[0], p[1], p[2]))
            .collect()
    } else {
        eight_bit.collect()
    };
    image_from(info, rgb)
}

/// JPEG/JFIF full-range equations, computed like pydicom's
/// `convert_color_space` (float32, then floor(v + 0.5)).
fn ybr_full_to_rgb(y: u8, cb: u8, cr: u8) -> [u8; 3] {
    let (y, cb, cr) = (f32::from(y), f32::from(cb) - 128.0, f32::from(cr) - 128.0);
    let r = y + 1.402 * cr;
    let g = y + (-0.114 * 1.772 / 0.587) * cb + (-0.299 * 1.402 / 0.587) * cr;
    let b = y + 1.772 * cb;
    [r, g, b].map(|v| (v + 0.5).floor().clamp(0.0, 255.0) as u8)
}

const PALETTE: [(Tag, Tag, Tag); 3] = [
    (
        tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
        tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
        tags::SEGMENTED_RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
    ),
    (
        tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
        tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
        tags::SEGMENTED_GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
    ),
    (
        tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
        tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
        tags::SEGMENTED_BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
    ),
];

/// One palette channel, already reduced to 8 bits.
struct Channel {
    first_mapped: i64,
    entries: Vec<u8>,
}

impl Channel {
    fn read(
        obj: &Object,
        info: &ImageInfo,
        (descriptor_tag, data_tag, segmented_tag): (Tag, Tag, Tag),
    ) -> Result<Self> {
        let missing = |what: &str| {
            Error::DicomInvalid(format!(
                "PALETTE COLOR image without a valid {what} ({descriptor_tag})"
            ))
        };
        let descriptor = lut_descriptor(obj, descriptor_tag, info.signed)
            .ok_or_else(|| missing("palette descriptor"))?;
        let words = match lut_words(obj, segmented_tag, descriptor.entries, 16) {
            Some(segmented) => expand_segmented(&segmented)?,
            None => lut_words(obj, data_tag, descriptor.entries, descriptor.bits)
                .ok_or_else(|| missing("palette data"))?,
        };
        let shift = descriptor.bits.saturating_sub(8);
        let entries: Vec<u8> = words
            .iter()
            .take(descriptor.entries)
            .map(|&w| (w >> shift).min(255) as u8)
            .collect();
        if entries.is_empty() {
            return Err(missing("palette data"));
        }
        Ok(Self {
            first_mapped: descriptor.first_mapped,
            entries,
        })
    }

    fn get(&self, stored: i32) -> u8 {
        let index = (i64::from(stored) - self.first_mapped).clamp(0, self.entries.len() as i64 - 1);
        self.entries[index as usize]
    }
}

pub(crate) fn render_palette(obj: &Object, info: &ImageInfo, stored: &[i32]) -> Result<RgbImage> {
    let [red, green, blue] = PALETTE.map(|tags| Channel::read(obj, info, tags));
    let (red, green, blue) = (red?, green?, blue?);
    let rgb = stored
        .iter()
        .flat_map(|&v| [red.get(v), green.get(v), blue.get(v)])
        .collect();
    image_from(info, rgb)
}

fn image_from(info: &ImageInfo, rgb: Vec<u8>) -> Result<RgbImage> {
    RgbImage::from_raw(info.cols, info.rows, rgb).ok_or_else(|| {
        Error::DicomInvalid("the frame has fewer samples than its size needs".into())
    })
}

/// A palette never has more entries than a 16-bit descriptor can declare.
const MAX_PALETTE_ENTRIES: usize = 65536;
/// Indirect segments may point at indirect segments; real files nest once.
const MAX_INDIRECTION: u32 = 4;

/// Expands Segmented Palette Color LUT Data (PS3.3 C.7.9.2) the way pydicom
/// does, so linear segments round identically.
fn expand_segmented(data: &[u16]) -> Result<Vec<u16>> {
    let mut lut = Vec::new();
    expand_segments(data, None, 0, &mut lut)?;
    Ok(lut)
}

fn expand_segments(
    data: &[u16],
    segment_count: Option<usize>,
    depth: u32,
    lut: &mut Vec<u16>,
) -> Result<()> {
    let invalid = |why: &str| Err(Error::DicomInvalid(format!("segmented palette: {why}")));
    let mut pos = 0;
    let mut segments = 0;
    while pos + 1 < data.len() && segment_count.is_none_or(|count| segments < count) {
        let (opcode, length) = (data[pos], usize::from(data[pos + 1]));
        pos += 2;
        match opcode {
            0 => {
                let Some(values) = data.get(pos..pos + length) else {
                    return invalid("a discrete segment runs past the data");
                };
                lut.extend_from_slice(values);
                pos += length;
            }
            1 => {
                let (Some(&y0), Some(&y1)) = (lut.last(), data.get(pos)) else {
                    return invalid("a linear segment has no start value or no end value");
                };
                pos += 1;
                lut.extend(linear(f64::from(y0), f64::from(y1), length));
            }
            2 => {
                if depth >= MAX_INDIRECTION || lut.is_empty() {
                    return invalid("an indirect segment is nested too deep or comes first");
                }
                let (Some(&low), Some(&high)) = (data.get(pos), data.get(pos + 1)) else {
                    return invalid("an indirect segment has no offset");
                };
                pos += 2;
                let byte_offset = (usize::from(high) << 16) | usize::from(low);
                let Some(target) = data.get(byte_offset / 2..) else {
                    return invalid("an indirect segment points past the data");
                };
                expand_segments(target, Some(length), depth + 1, lut)?;
            }
            _ => return invalid(&format!("unknown opcode {opcode}")),
        }
        if lut.len() > MAX_PALETTE_ENTRIES {
            return invalid("it expands to more than 65536 entries");
        }
        segments += 1;
    }
    Ok(())
}

/// `np.around(np.linspace(y0 + step, y1, length))` with `step = (y1 - y0) / length`.
fn linear(y0: f64, y1: f64, length: usize) -> impl Iterator<Item = u16> {
    let start = y0 + (y1 - y0) / length.max(1) as f64;
    let step = if length > 1 {
        (y1 - start) / (length - 1) as f64
    } else {
        0.0
    };
    (0..length).map(move |i| {
        let v = if i + 1 == length {
            y1
        } else {
            i as f64 * step + start
        };
        v.round_ties_even().clamp(0.0, 65535.0) as u16
    })
}
