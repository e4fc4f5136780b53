use std::ffi::c_int;
use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::{DynamicImage, GrayImage, RgbImage};
use libwebp_sys as webp;

use super::cancel::Cancel;
use super::options::{ImageFormat, RenderOptions};
use crate::error::{Error, Result};

/// WebP's format limit on each side.
const WEBP_MAX_DIMENSION: u32 = 16383;

/// Encodes `image` in `opts.format` with its quality, lossless and effort settings.
pub(crate) fn encode(
    image: &DynamicImage,
    opts: &RenderOptions,
    cancel: &Cancel,
) -> Result<Vec<u8>> {
    let format = opts.format;
    let failed = |e: image::ImageError| {
        Error::DicomUnsupported(format!("cannot encode the image as {format:?}: {e}"))
    };
    let mut out = Cursor::new(Vec::new());
    match format {
        ImageFormat::Png => image
            .write_with_encoder(PngEncoder::new(&mut out))
            .map_err(failed)?,
        ImageFormat::Jpeg => image
            .write_with_encoder(JpegEncoder::new_with_quality(&mut out, opts.quality))
            .map_err(failed)?,
        ImageFormat::Webp => return encode_webp(image, opts, cancel),
    }
    Ok(out.into_inner())
}

/// Lossless WebP's `quality` (how hard it compresses), as libwebp's
/// `WebPEncodeLosslessRGB` sets it.
const LOSSLESS_QUALITY: f32 = 70.0;

fn encode_webp(image: &DynamicImage, opts: &RenderOptions, cancel: &Cancel) -> Result<Vec<u8>> {
    let lossless = opts.lossless;
    let (width, height) = (image.width(), image.height());
    if width > WEBP_MAX_DIMENSION || height > WEBP_MAX_DIMENSION {
        return Err(Error::DicomUnsupported(format!(
            "WebP cannot hold {width}x{height}: each side must be at most {WEBP_MAX_DIMENSION}"
        )));
    }
    let failed = || Error::DicomUnsupported(format!("libwebp could not encode {width}x{height}"));
    let quality = if lossless {
        LOSSLESS_QUALITY
    } else {
        f32::from(opts.quality)
    };
    let mut config =
        webp::WebPConfig::new_with_preset(webp::WebPPreset::WEBP_PRESET_DEFAULT, quality)
            .map_err(|()| failed())?;
    config.lossless = i32::from(lossless);
    // sharp's `effort` is this too, so equal settings give sharp's bytes.
    config.method = i32::from(opts.effort);
    // With a thread level, libwebp runs a lossy encode's analysis pass on two threads, with
    // the same bytes out: one render in flight measured 5–10 % faster on 2 cores, four in
    // flight no different. Lossless encodes (same bytes too) measured no faster.
    config.thread_level = i32::from(!lossless);
    let mut picture = Picture::new(width, height, lossless).ok_or_else(failed)?;
    let imported = match image {
        DynamicImage::ImageLuma8(gray) if !lossless => picture.import_gray(gray),
        _ => picture.import_rgb(&image.to_rgb8()),
    };
    if !imported {
        return Err(failed());
    }
    picture
        .encode(&config, cancel)
        .ok_or_else(|| cancel.check().err().unwrap_or_else(failed))
}

/// A libwebp picture and the memory writer it encodes into; both freed on drop.
struct Picture {
    picture: webp::WebPPicture,
    /// Boxed: `picture.custom_ptr` points at it.
    writer: Box<webp::WebPMemoryWriter>,
}

impl Picture {
    /// `argb`: lossless input; lossy input is YUV 4:2:0.
    fn new(width: u32, height: u32, argb: bool) -> Option<Self> {
        let mut picture = webp::WebPPicture::new().ok()?;
        picture.width = width as i32;
        picture.height = height as i32;
        picture.use_argb = i32::from(argb);
        picture.colorspace = webp::WebPEncCSP::WEBP_YUV420;
        let mut writer = Box::new(webp::WebPMemoryWriter {
            mem: std::ptr::null_mut(),
            size: 0,
            max_size: 0,
            pad: [0],
        });
        // SAFETY: initialises the writer that `custom_ptr` points to; the box
        // keeps its address for as long as `picture` lives.
        unsafe { webp::WebPMemoryWriterInit(&mut *writer) };
        picture.writer = Some(webp::WebPMemoryWrite);
        picture.custom_ptr = (&mut *writer as *mut webp::WebPMemoryWriter).cast();
        Some(Self { picture, writer })
    }

    fn import_rgb(&mut self, rgb: &RgbImage) -> bool {
        // SAFETY: `rgb` holds `height` rows of `3 * width` bytes.
        unsafe {
            webp::WebPPictureImportRGB(&mut self.picture, rgb.as_ptr(), 3 * rgb.width() as i32) != 0
        }
    }

    /// Writes the YUV planes directly, as libwebp would convert the gray
    /// pixels' RGB (the same bytes out, checked by a test) without first
    /// tripling the image to RGB: 10 % of a 1024² encode.
    fn import_gray(&mut self, gray: &GrayImage) -> bool {
        // SAFETY: allocates the Y, U and V planes for `width`×`height`.
        if unsafe { webp::WebPPictureAlloc(&mut self.picture) } == 0 {
            return false;
        }
        let p = &self.picture;
        let (width, height) = (gray.width() as usize, gray.height() as usize);
        let (chroma_width, chroma_height) = (width.div_ceil(2), height.div_ceil(2));
        // SAFETY: WebPPictureAlloc made `y` hold `height` rows of `y_stride >=
        // width` bytes, `u` and `v` `chroma_height` rows of `uv_stride >=
        // chroma_width` bytes.
        let (y, u, v) = unsafe {
            (
                std::slice::from_raw_parts_mut(p.y, p.y_stride as usize * height),
                std::slice::from_raw_parts_mut(p.u, p.uv_stride as usize * chroma_height),
                std::slice::from_raw_parts_mut(p.v, p.uv_stride as usize * chroma_height),
            )
        };
        let luma = gray_to_luma();
        for (row, pixels) in y
            .chunks_mut(p.y_stride as usize)
            .zip(gray.as_raw().chunks(width))
        {
            for (out, &pixel) in row.iter_mut().zip(pixels) {
                *out = luma[usize::from(pixel)];
            }
        }
        // Gray has no chroma: libwebp's conversion gives exactly 128.
        for plane in [u, v] {
            for row in plane.chunks_mut(p.uv_stride as usize) {
                row[..chroma_width].fill(128);
            }
        }
        true
    }

    /// Stops early, with `None`, once `cancel` is set.
    fn encode(mut self, config: &webp::WebPConfig, cancel: &Cancel) -> Option<Vec<u8>> {
        self.picture.progress_hook = Some(progress);
        self.picture.user_data = (cancel as *const Cancel).cast_mut().cast();
        // SAFETY: the picture holds imported pixels and writes into `writer`,
        // whose `size` bytes at `mem` are copied out before drop frees them;
        // `user_data` points at `cancel`, which outlives the call.
        unsafe {
            if webp::WebPEncode(config, &mut self.picture) == 0 {
                return None;
            }
            Some(std::slice::from_raw_parts(self.writer.mem, self.writer.size).to_vec())
        }
    }
}

/// libwebp's progress hook: it calls it as the encode goes on (after each row of
/// macroblocks), and stops the encode when it returns 0.
unsafe extern "C" fn progress(_percent: c_int, picture: *const webp::WebPPicture) -> c_int {
    // SAFETY: `Picture::encode` set `user_data` to a `Cancel` that outlives the encode.
    let cancel = unsafe { &*(*picture).user_data.cast::<Cancel>() };
    c_int::from(!cancel.is_set())
}

impl Drop for Picture {
    fn drop(&mut self) {
        // SAFETY: both were initialised by `new` and are freed only here.
        unsafe {
            webp::WebPPictureFree(&mut self.picture);
            webp::WebPMemoryWriterClear(&mut *self.writer);
        }
    }
}

/// libwebp's `VP8RGBToY` for r = g = b: BT.601 studio-range luma, rounded.
fn gray_to_luma() -> [u8; 256] {
    const FIX: u32 = 16;
    std::array::from_fn(|value| {
        let luma = ((16839 + 33059 + 6420) * value as u32 + (1 << (FIX - 1)) + (16 << FIX)) >> FIX;
        luma as u8
    })
}

#[cfg(test)]
mod tests {
    use image::{GrayImage, Luma};

    use super::*;
    use crate::dicom::DEFAULT_EFFORT;

    fn webp(quality: u8, lossless: bool) -> RenderOptions {
        RenderOptions {
            quality,
            lossless,
            ..RenderOptions::default()
        }
    }

    /// Odd sides exercise the half-filled chroma rows and columns.
    fn gradient(width: u32, height: u32) -> GrayImage {
        GrayImage::from_fn(width, height, |x, y| Luma([((x * 7 + y * 13) % 256) as u8]))
    }

    #[test]
    fn gray_webp_is_the_same_as_libwebp_converting_rgb() {
        for (width, height) in [(1, 1), (37, 23), (64, 48), (255, 3)] {
            let gray = DynamicImage::ImageLuma8(gradient(width, height));
            let rgb = DynamicImage::ImageRgb8(gray.to_rgb8());
            for quality in [1, 90, 100] {
                assert_eq!(
                    encode_webp(&gray, &webp(quality, false), &Cancel::default()).expect("gray"),
                    encode_webp(&rgb, &webp(quality, false), &Cancel::default()).expect("rgb"),
                    "{width}x{height} at quality {quality}"
                );
            }
        }
    }

    #[test]
    fn effort_is_the_encoder_method_and_defaults_to_four() {
        let image = DynamicImage::ImageLuma8(gradient(200, 120));
        let at = |effort| {
            let opts = RenderOptions {
                effort,
                ..webp(90, false)
            };
            encode_webp(&image, &opts, &Cancel::default()).expect("encodes")
        };
        let fastest = at(0);
        assert_eq!(
            at(DEFAULT_EFFORT),
            encode_webp(&image, &webp(90, false), &Cancel::default()).expect("encodes")
        );
        assert_ne!(fastest, at(DEFAULT_EFFORT));
        let decoded = image::load_from_memory(&fastest).expect("decodes");
        assert_eq!((decoded.width(), decoded.height()), (200, 120));
    }

    #[test]
    fn webp_too_large_for_the_format_is_unsupported() {
        let wide = DynamicImage::ImageLuma8(GrayImage::new(WEBP_MAX_DIMENSION + 1, 1));
        assert!(matches!(
            encode_webp(&wide, &webp(90, false), &Cancel::default()),
            Err(Error::DicomUnsupported(_))
        ));
    }

    #[test]
    fn a_cancelled_encode_stops_inside_libwebp() {
        let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let cancel = Cancel::new(flag.clone());
        for lossless in [false, true] {
            let image = DynamicImage::ImageLuma8(gradient(300, 200));
            let stopped = encode_webp(&image, &webp(90, lossless), &cancel);
            assert!(
                matches!(stopped, Err(Error::Aborted(_))),
                "lossless {lossless}"
            );
            flag.store(false, std::sync::atomic::Ordering::Release);
            assert_eq!(
                encode_webp(&image, &webp(90, lossless), &cancel).expect("encodes"),
                encode_webp(&image, &webp(90, lossless), &Cancel::default()).expect("encodes")
            );
            flag.store(true, std::sync::atomic::Ordering::Release);
        }
    }
}
