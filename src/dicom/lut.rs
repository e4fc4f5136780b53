//! Grayscale rendering: Modality LUT → VOI → 8 bits (shared/dicom/README.md).

use dicom_dictionary_std::tags;
use image::GrayImage;

use super::attributes::{
    LutDescriptor, Object, first_item, float, floats, lut_descriptor, lut_words, string,
};
use super::decode::{ImageInfo, Photometric};
use super::functional_groups::source;
use super::options::Window;
use crate::error::{Error, Result};

/// A lookup table indexed by `value - first_mapped`, clamped at both ends.
struct Lut {
    descriptor: LutDescriptor,
    data: Vec<u16>,
}

impl Lut {
    fn read(item: &Object, signed_input: bool) -> Option<Self> {
        let descriptor = lut_descriptor(item, tags::LUT_DESCRIPTOR, signed_input)?;
        let data = lut_words(item, tags::LUT_DATA, descriptor.entries, descriptor.bits)?;
        (!data.is_empty()).then_some(Self { descriptor, data })
    }

    fn get(&self, value: f64) -> f64 {
        let last = self.descriptor.entries.min(self.data.len()) - 1;
        let index = (value.floor() - self.descriptor.first_mapped as f64).clamp(0.0, last as f64);
        f64::from(self.data[index as usize])
    }
}

enum Modality {
    Lut(Lut),
    Rescale { slope: f64, intercept: f64 },
    Identity,
}

impl Modality {
    fn read(obj: &Object, info: &ImageInfo, frame: u32) -> Self {
        if let Some(lut) = first_item(obj, tags::MODALITY_LUT_SEQUENCE)
            .and_then(|item| Lut::read(item, info.signed))
        {
            return Self::Lut(lut);
        }
        let attrs = source(obj, frame, tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE);
        match (
            float(attrs, tags::RESCALE_SLOPE),
            float(attrs, tags::RESCALE_INTERCEPT),
        ) {
            (Some(slope), Some(intercept)) => Self::Rescale { slope, intercept },
            _ => Self::Identity,
        }
    }

    fn apply(&self, stored: i32) -> f64 {
        match self {
            Self::Lut(lut) => lut.get(f64::from(stored)),
            Self::Rescale { slope, intercept } => slope * f64::from(stored) + intercept,
            Self::Identity => f64::from(stored),
        }
    }
}

#[derive(Clone, Copy)]
enum VoiFunction {
    Linear,
    LinearExact,
    Sigmoid,
}

enum Voi {
    Lut(Lut),
    Window {
        center: f64,
        width: f64,
        function: VoiFunction,
    },
    MinMax {
        min: f64,
        max: f64,
    },
}

impl Voi {
    /// `window` (the caller's override) wins over the file; it keeps the
    /// file's VOI LUT Function so SIGMOID images stay SIGMOID.
    fn read(
        obj: &Object,
        info: &ImageInfo,
        frame: u32,
        window: Option<&Window>,
        modality_output: &[f64],
    ) -> Self {
        let attrs = source(obj, frame, tags::FRAME_VOILUT_SEQUENCE);
        let function = match string(attrs, tags::VOILUT_FUNCTION).as_deref() {
            Some("LINEAR_EXACT") => VoiFunction::LinearExact,
            Some("SIGMOID") => VoiFunction::Sigmoid,
            _ => VoiFunction::Linear,
        };
        if let Some(window) = window {
            return Self::Window {
                center: window.center,
                width: window.width,
                function,
            };
        }
        if let Some(lut) =
            first_item(obj, tags::VOILUT_SEQUENCE).and_then(|item| Lut::read(item, info.signed))
        {
            return Self::Lut(lut);
        }
        let first = |tag| floats(attrs, tag).and_then(|v| v.first().copied());
        if let (Some(center), Some(width)) = (first(tags::WINDOW_CENTER), first(tags::WINDOW_WIDTH))
            && width > 0.0
        {
            return Self::Window {
                center,
                width,
                function,
            };
        }
        let (min, max) = modality_output
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        Self::MinMax { min, max }
    }

    /// Maps a modality value to 0.0..=255.0 before rounding.
    fn apply(&self, x: f64) -> f64 {
        match *self {
            Self::Lut(ref lut) => lut.get(x) * 255.0 / ((1u32 << lut.descriptor.bits) - 1) as f64,
            Self::Window {
                center,
                width,
                function: VoiFunction::Linear,
            } => {
                // PS3.3 C.11.2.1.2.1; widths below 1 are not defined for LINEAR.
                let width = width.max(1.0);
                let (c, w) = (center - 0.5, width - 1.0);
                if x <= c - w / 2.0 {
                    0.0
                } else if x > c + w / 2.0 {
                    255.0
                } else {
                    ((x - c) / w + 0.5) * 255.0
                }
            }
            Self::Window {
                center,
                width,
                function: VoiFunction::LinearExact,
            } => {
                if x <= center - width / 2.0 {
                    0.0
                } else if x > center + width / 2.0 {
                    255.0
                } else {
                    ((x - center) / width + 0.5) * 255.0
                }
            }
            Self::Window {
                center,
                width,
                function: VoiFunction::Sigmoid,
            } => 255.0 / (1.0 + (-4.0 * (x - center) / width).exp()),
            Self::MinMax { min, max } if max > min => (x - min) / (max - min) * 255.0,
            Self::MinMax { .. } => 0.0,
        }
    }
}

/// Rounds half up after clipping, as the reference renderer does.
pub(crate) fn to_u8(v: f64) -> u8 {
    (v.clamp(0.0, 255.0) + 0.5).floor() as u8
}

pub(crate) fn render_gray(
    obj: &Object,
    info: &ImageInfo,
    frame: u32,
    stored: &[i32],
    window: Option<&Window>,
) -> Result<GrayImage> {
    let table = StoredTable::new(info, stored);
    let modality = Modality::read(obj, info, frame);
    let values: Vec<f64> = table.present().map(|v| modality.apply(v)).collect();
    let voi = Voi::read(obj, info, frame, window, &values);
    let invert = info.photometric == Photometric::Monochrome1;
    let pixels = table.map(stored, |index| {
        let v = to_u8(voi.apply(values[index]));
        if invert { 255 - v } else { v }
    });
    GrayImage::from_raw(info.cols, info.rows, pixels).ok_or_else(|| {
        Error::DicomInvalid("the frame has fewer samples than its size needs".into())
    })
}

/// The stored values that occur in a frame. At most 2^16 are possible, so the
/// pipeline runs once per distinct value and once more per pixel as a lookup,
/// instead of in floating point for each of a million pixels.
struct StoredTable {
    /// The smallest possible stored value.
    lowest: i32,
    /// Per possible stored value: its index among the present ones, or `ABSENT`.
    index: Vec<u32>,
    present: Vec<i32>,
}

impl StoredTable {
    const ABSENT: u32 = u32::MAX;

    /// `stored` holds values within the `bits_stored` range (see
    /// `decode::stored_values`).
    fn new(info: &ImageInfo, stored: &[i32]) -> Self {
        let bits = u32::from(info.bits_stored);
        let lowest = if info.signed { -(1 << (bits - 1)) } else { 0 };
        let mut index = vec![Self::ABSENT; 1 << bits];
        for &v in stored {
            index[(v - lowest) as usize] = 0;
        }
        let mut present = Vec::new();
        for (offset, slot) in index.iter_mut().enumerate() {
            if *slot != Self::ABSENT {
                *slot = present.len() as u32;
                present.push(lowest + offset as i32);
            }
        }
        Self {
            lowest,
            index,
            present,
        }
    }

    fn present(&self) -> impl Iterator<Item = i32> + '_ {
        self.present.iter().copied()
    }

    /// `pixel(i)` for the `i`-th present value, looked up for every sample.
    fn map(&self, stored: &[i32], pixel: impl Fn(usize) -> u8) -> Vec<u8> {
        let by_present: Vec<u8> = (0..self.present.len()).map(pixel).collect();
        stored
            .iter()
            .map(|&v| by_present[self.index[(v - self.lowest) as usize] as usize])
            .collect()
    }
}
