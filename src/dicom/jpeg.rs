//! JPEG (ITU-T T.81) frames are decoded with libjpeg-turbo 3, which handles
//! all DICOM JPEG processes in one library: baseline 8-bit, extended 12-bit
//! and lossless up to 16-bit. It is also the decoder the references were
//! made with, so colour conversion and chroma upsampling match exactly.

use std::ffi::CStr;

use turbojpeg_sys as tj;

use crate::error::{Error, Result};

/// Progressive scans beyond this are a decode-time denial-of-service vector
/// (libjpeg-turbo's own recommendation for untrusted input).
const SCAN_LIMIT: i32 = 500;

struct Decompressor(tj::tjhandle);

impl Decompressor {
    fn new() -> Result<Self> {
        // SAFETY: tj3Init has no preconditions; a null handle is checked below.
        let handle = unsafe { tj::tj3Init(tj::TJINIT_TJINIT_DECOMPRESS as i32) };
        if handle.is_null() {
            return Err(Error::DicomUnsupported(
                "cannot initialise the JPEG decoder".into(),
            ));
        }
        Ok(Self(handle))
    }

    fn get(&self, param: tj::TJPARAM) -> i32 {
        // SAFETY: self.0 is a live handle.
        unsafe { tj::tj3Get(self.0, param as i32) }
    }

    fn set(&self, param: tj::TJPARAM, value: i32) -> Result<()> {
        // SAFETY: self.0 is a live handle.
        if unsafe { tj::tj3Set(self.0, param as i32, value) } < 0 {
            return Err(self.error());
        }
        Ok(())
    }

    fn error(&self) -> Error {
        // SAFETY: tj3GetErrorStr returns a NUL-terminated string owned by the handle.
        let message = unsafe { CStr::from_ptr(tj::tj3GetErrorStr(self.0)) };
        Error::DicomInvalid(format!("JPEG: {}", message.to_string_lossy()))
    }

    fn check(&self, status: i32) -> Result<()> {
        if status < 0 {
            Err(self.error())
        } else {
            Ok(())
        }
    }
}

impl Drop for Decompressor {
    fn drop(&mut self) {
        // SAFETY: self.0 came from tj3Init and is destroyed once.
        unsafe { tj::tj3Destroy(self.0) }
    }
}

/// Decodes one JPEG codestream into interleaved samples: one per pixel for
/// grayscale, RGB triplets for colour (libjpeg converts YCbCr itself).
/// The stream must have exactly the expected size, so the output buffer is
/// bounded by the caller's frame size limit.
pub(crate) fn decode(
    data: &[u8],
    width: u32,
    height: u32,
    samples_per_pixel: u16,
) -> Result<Vec<u16>> {
    let decoder = Decompressor::new()?;
    // SAFETY: data is a valid slice for its length.
    decoder.check(unsafe { tj::tj3DecompressHeader(decoder.0, data.as_ptr(), data.len() as _) })?;
    let (jpeg_width, jpeg_height) = (
        decoder.get(tj::TJPARAM_TJPARAM_JPEGWIDTH),
        decoder.get(tj::TJPARAM_TJPARAM_JPEGHEIGHT),
    );
    let components = if decoder.get(tj::TJPARAM_TJPARAM_COLORSPACE) == tj::TJCS_TJCS_GRAY as i32 {
        1
    } else {
        3
    };
    if i64::from(jpeg_width) != i64::from(width)
        || i64::from(jpeg_height) != i64::from(height)
        || components != samples_per_pixel
    {
        return Err(Error::DicomInvalid(format!(
            "the JPEG stream is {jpeg_width}x{jpeg_height} with {components} component(s), \
             the data set says {width}x{height} with {samples_per_pixel}"
        )));
    }
    decoder.set(tj::TJPARAM_TJPARAM_SCANLIMIT, SCAN_LIMIT)?;
    let pixel_format = if samples_per_pixel == 1 {
        tj::TJPF_TJPF_GRAY
    } else {
        tj::TJPF_TJPF_RGB
    };
    let len = width as usize * height as usize * usize::from(samples_per_pixel);
    let precision = decoder.get(tj::TJPARAM_TJPARAM_PRECISION);
    let call = DecodeCall {
        decoder: &decoder,
        data,
        len,
        pixel_format,
    };
    match precision {
        2..=8 => Ok(call
            .decompress::<u8>(tj::tj3Decompress8)?
            .into_iter()
            .map(u16::from)
            .collect()),
        // 12-bit samples come back as C shorts holding 0..4095.
        9..=12 => Ok(call
            .decompress::<i16>(tj::tj3Decompress12)?
            .into_iter()
            .map(|v| v as u16)
            .collect()),
        13..=16 => call.decompress::<u16>(tj::tj3Decompress16),
        _ => Err(Error::DicomUnsupported(format!(
            "JPEG data precision {precision} bits"
        ))),
    }
}

/// The arguments every `tj3Decompress*` variant takes; only the sample type differs.
struct DecodeCall<'a> {
    decoder: &'a Decompressor,
    data: &'a [u8],
    len: usize,
    pixel_format: i32,
}

type DecompressFn<T> =
    unsafe extern "C" fn(tj::tjhandle, *const u8, tj::size_t, *mut T, i32, i32) -> i32;

impl DecodeCall<'_> {
    fn decompress<T: Copy + Default>(&self, f: DecompressFn<T>) -> Result<Vec<T>> {
        let mut out = vec![T::default(); self.len];
        // SAFETY: the header was read with the same handle and checked to be width x
        // height x samples_per_pixel, which is `len` samples: exactly the buffer size at
        // pitch 0 (tightly packed).
        self.decoder.check(unsafe {
            f(
                self.decoder.0,
                self.data.as_ptr(),
                self.data.len() as _,
                out.as_mut_ptr(),
                0,
                self.pixel_format,
            )
        })?;
        Ok(out)
    }
}
