use std::io::Cursor;

use image::DynamicImage;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use libwebp_sys as webp;

use super::options::ImageFormat;
use crate::error::{Error, Result};

/// WebP's format limit on each side.
const WEBP_MAX_DIMENSION: u32 = 16383;

pub(crate) fn encode(
    image: &DynamicImage,
    format: ImageFormat,
    quality: u8,
    lossless: bool,
) -> Result<Vec<u8>> {
    let failed = |e: image::ImageError| {
        Error::DicomUnsupported(format!("cannot encode the image as {format:?}: {e}"))
    };
    let mut out = Cursor::new(Vec::new());
    match format {
        ImageFormat::Png => image
            .write_with_encoder(PngEncoder::new(&mut out))
            .map_err(failed)?,
        ImageFormat::Jpeg => image
            .write_with_encoder(JpegEncoder::new_with_quality(&mut out, quality))
            .map_err(failed)?,
        ImageFormat::Webp => return encode_webp(image, quality, lossless),
    }
    Ok(out.into_inner())
}

/// libwebp has no grayscale input, so grayscale goes in as RGB; it stores
/// YUV (lossy) or ARGB (lossless) either way.
fn encode_webp(image: &DynamicImage, quality: u8, lossless: bool) -> Result<Vec<u8>> {
    let (width, height) = (image.width(), image.height());
    if width > WEBP_MAX_DIMENSION || height > WEBP_MAX_DIMENSION {
        return Err(Error::DicomUnsupported(format!(
            "WebP cannot hold {width}x{height}: each side must be at most {WEBP_MAX_DIMENSION}"
        )));
    }
    let rgb = image.to_rgb8();
    let stride = 3 * width as i32;
    let mut output: *mut u8 = std::ptr::null_mut();
    // SAFETY: `rgb` holds height rows of `stride` bytes; libwebp allocates
    // `output` and returns its length (0 on failure, leaving it null).
    let len = unsafe {
        if lossless {
            webp::WebPEncodeLosslessRGB(
                rgb.as_ptr(),
                width as i32,
                height as i32,
                stride,
                &mut output,
            )
        } else {
            webp::WebPEncodeRGB(
                rgb.as_ptr(),
                width as i32,
                height as i32,
                stride,
                f32::from(quality),
                &mut output,
            )
        }
    };
    if len == 0 || output.is_null() {
        return Err(Error::DicomUnsupported(format!(
            "libwebp could not encode {width}x{height}"
        )));
    }
    // SAFETY: libwebp wrote `len` bytes at `output`, which we free once after copying.
    let encoded = unsafe {
        let bytes = std::slice::from_raw_parts(output, len).to_vec();
        webp::WebPFree(output.cast());
        bytes
    };
    Ok(encoded)
}
