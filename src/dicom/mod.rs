//! DICOM rendering: decode one frame, apply the display pipeline described
//! in `shared/dicom/README.md`, and encode it as WebP, PNG or JPEG.
//!
//! Input is untrusted: every failure is `Error::DicomInvalid` (corrupt or
//! inconsistent data) or `Error::DicomUnsupported` (valid but outside what we
//! render), never a panic, and memory is bounded by the input size plus a
//! small multiple of one decoded frame of at most [`MAX_FRAME_BYTES`] bytes.

mod attributes;
mod cancel;
mod codestream;
mod colour;
mod decode;
mod encode;
mod functional_groups;
mod guard;
mod j2k;
mod jpeg;
mod lut;
mod metadata;
mod open;
mod options;
mod thumbnail;

#[cfg(test)]
mod tests;

use dicom_object::DefaultDicomObject;
use image::DynamicImage;

pub use cancel::Cancel;
pub use decode::{MAX_DIMENSION, MAX_FRAME_BYTES};
pub use metadata::Metadata;
pub use open::read_file;
pub use options::{DEFAULT_EFFORT, ImageFormat, MAX_EFFORT, MAX_THUMBNAIL, RenderOptions, Window};

use crate::error::{Error, Result};
use decode::{ImageInfo, Photometric};

/// An encoded frame, its thumbnails and the object's metadata.
#[derive(Debug, Clone)]
pub struct Rendition {
    pub image: Vec<u8>,
    pub width: u32,
    pub height: u32,
    pub frames: u32,
    /// `(requested size, encoded image)`, in the order requested.
    pub thumbnails: Vec<(u32, Vec<u8>)>,
    pub metadata: Metadata,
}

/// Decodes `opts.frame` once and encodes it plus every thumbnail in
/// `opts.format`.
pub fn render(bytes: &[u8], opts: &RenderOptions) -> Result<Rendition> {
    render_cancellable(bytes, opts, &Cancel::default())
}

/// [`render`], stopped with `ABORTED` soon after `cancel` is set.
pub fn render_cancellable(
    bytes: &[u8],
    opts: &RenderOptions,
    cancel: &Cancel,
) -> Result<Rendition> {
    opts.validate()?;
    let obj = open::open(bytes, true)?;
    cancel.check()?;
    let (image, info) = render_object(&obj, opts.frame, opts.window.as_ref())?;
    cancel.check()?;
    let encode = |image: &DynamicImage| {
        cancel.check()?;
        encode::encode(image, opts, cancel)
    };
    let encode_thumbnails = || {
        thumbnail::thumbnails(&image, &opts.thumbnails)?
            .into_iter()
            .map(|(size, thumb)| Ok((size, thumb.as_ref().map(encode).transpose()?)))
            .collect::<Result<Vec<_>>>()
    };
    // The full image and the thumbnails encode on two threads: one render uses two
    // cores even when it is the only one in flight.
    let (full, scaled) = if opts.thumbnails.is_empty() {
        (encode(&image), Ok(Vec::new()))
    } else {
        std::thread::scope(|scope| {
            let scaled = scope.spawn(encode_thumbnails);
            let full = encode(&image);
            let scaled = scaled.join().unwrap_or_else(|_| {
                Err(Error::DicomUnsupported(
                    "the thumbnail encoder failed".into(),
                ))
            });
            (full, scaled)
        })
    };
    let full = full?;
    // A thumbnail the image already fits in is the image: the same bytes.
    let thumbnails = scaled?
        .into_iter()
        .map(|(size, encoded)| (size, encoded.unwrap_or_else(|| full.clone())))
        .collect();
    Ok(Rendition {
        image: full,
        width: image.width(),
        height: image.height(),
        frames: info.frames,
        thumbnails,
        metadata: Metadata::read(&obj),
    })
}

/// Reads the attributes only; Pixel Data is neither decoded nor kept.
pub fn metadata(bytes: &[u8]) -> Result<Metadata> {
    Ok(Metadata::read(&open::open(bytes, false)?))
}

/// Renders one frame to 8 bits: `Luma8` for MONOCHROME1/2, `Rgb8` for colour.
/// `window` overrides the file's VOI for grayscale images.
pub fn render_frame(bytes: &[u8], frame: u32, window: Option<&Window>) -> Result<DynamicImage> {
    let obj = open::open(bytes, true)?;
    Ok(render_object(&obj, frame, window)?.0)
}

fn render_object(
    obj: &DefaultDicomObject,
    frame: u32,
    window: Option<&Window>,
) -> Result<(DynamicImage, ImageInfo)> {
    if let Some(window) = window {
        options::validate_window(window)?;
    }
    let info = ImageInfo::read(obj)?;
    options::validate_frame(frame, info.frames)?;
    let decoded = decode::frame(obj, &info, frame)?;
    let image = match info.photometric {
        p if p.is_grayscale() => {
            lut::render_gray(obj, &info, frame, &decoded.samples, window)?.into()
        }
        Photometric::PaletteColor => colour::render_palette(obj, &info, &decoded.samples)?.into(),
        _ => colour::render_colour(&info, &decoded)?.into(),
    };
    Ok((image, info))
}
