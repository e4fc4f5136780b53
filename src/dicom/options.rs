use crate::error::{Error, Result};

/// Output encoding of a rendition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImageFormat {
    #[default]
    Webp,
    Png,
    Jpeg,
}

/// A VOI window in modality units (after rescale / modality LUT).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub center: f64,
    pub width: f64,
}

/// How to render a DICOM image.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderOptions {
    pub format: ImageFormat,
    /// 1..=100; used by lossy WebP and JPEG.
    pub quality: u8,
    /// Lossless WebP; PNG is always lossless and JPEG never is.
    pub lossless: bool,
    /// WebP's speed/size trade-off, libwebp's `method` (sharp's `effort`):
    /// 0 fastest … 6 smallest, default 4.
    pub effort: u8,
    /// Zero-based frame index.
    pub frame: u32,
    /// Overrides the file's VOI LUT / window for grayscale images; ignored for colour.
    pub window: Option<Window>,
    /// Edge lengths of square boxes that thumbnails must fit in.
    pub thumbnails: Vec<u32>,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            format: ImageFormat::Webp,
            quality: 90,
            lossless: false,
            effort: DEFAULT_EFFORT,
            frame: 0,
            window: None,
            thumbnails: Vec::new(),
        }
    }
}

pub const MAX_THUMBNAIL: u32 = 4096;

/// libwebp's default `method`, and sharp's default `effort`.
pub const DEFAULT_EFFORT: u8 = 4;
pub const MAX_EFFORT: u8 = 6;

impl RenderOptions {
    /// Checks everything that does not need the file; `frame` is checked
    /// against the file's frame count after opening it. Bad options are the
    /// caller's mistake, not the file's: `INVALID_CONFIG` naming the option.
    pub(crate) fn validate(&self) -> Result<()> {
        if !(1..=100).contains(&self.quality) {
            return Err(Error::config(
                "quality",
                format!("must be 1..=100, got {}", self.quality),
            ));
        }
        if self.effort > MAX_EFFORT {
            return Err(Error::config(
                "effort",
                format!("must be 0..={MAX_EFFORT}, got {}", self.effort),
            ));
        }
        if let Some(size) = self
            .thumbnails
            .iter()
            .find(|&&size| !(1..=MAX_THUMBNAIL).contains(&size))
        {
            return Err(Error::config(
                "thumbnails",
                format!("each size must be 1..={MAX_THUMBNAIL}, got {size}"),
            ));
        }
        if let Some(window) = &self.window {
            validate_window(window)?;
        }
        Ok(())
    }
}

pub(crate) fn validate_window(window: &Window) -> Result<()> {
    if !window.center.is_finite() || !window.width.is_finite() || window.width <= 0.0 {
        return Err(Error::config(
            "window",
            format!(
                "center must be finite and width finite and > 0, got center {} width {}",
                window.center, window.width
            ),
        ));
    }
    Ok(())
}

pub(crate) fn validate_frame(frame: u32, frames: u32) -> Result<()> {
    if frame >= frames {
        return Err(Error::config(
            "frame",
            format!("{frame} is out of range: the image has {frames} frame(s)"),
        ));
    }
    Ok(())
}
