//! JPEG 2000 and High-Throughput JPEG 2000 frames are decoded with OpenJPEG
//! 2.5, called here rather than through dicom-rs's adapter (the jpeg2k crate),
//! which gives every decode a thread per online CPU of the host. In a container
//! limited to 2 of 64 CPUs that is 64 threads per frame; here a decode gets the
//! CPUs this process may run on (its affinity and cgroup quota).

use std::ffi::{CStr, c_char, c_void};
use std::marker::PhantomData;
use std::num::NonZeroUsize;

use openjpeg_sys as opj;

use super::codestream::JP2_SIGNATURE;
use super::decode::ImageInfo;
use crate::error::{Error, Result};

/// Decodes one codestream into interleaved samples, each cut to Bits
/// Allocated as the data set would store it (two's complement for signed data).
/// A codestream of another size than the data set's is refused before OpenJPEG
/// allocates anything for its samples.
pub(crate) fn decode(data: &[u8], info: &ImageInfo) -> Result<Vec<u32>> {
    let (width, height) = (info.cols, info.rows);
    let mask: u32 = match info.bits_allocated {
        8 => 0xFF,
        16 => 0xFFFF,
        _ => {
            return Err(Error::DicomUnsupported(format!(
                "JPEG 2000 with Bits Allocated {} (8 or 16 are supported)",
                info.bits_allocated
            )));
        }
    };
    let format = if data.starts_with(&JP2_SIGNATURE) {
        opj::CODEC_FORMAT::OPJ_CODEC_JP2
    } else {
        opj::CODEC_FORMAT::OPJ_CODEC_J2K
    };
    let decoder = Decoder::new(format)?;
    let mut source = Source { data, offset: 0 };
    let stream = Stream::new(&mut source)?;
    let image = decoder.read_header(&stream)?;
    let declared = image.size();
    if declared != (width, height, info.samples_per_pixel.into()) {
        let (w, h, n) = declared;
        return Err(Error::DicomInvalid(format!(
            "the JPEG 2000 codestream is {w}x{h} with {n} component(s), \
             the data set says {width}x{height} with {}",
            info.samples_per_pixel
        )));
    }
    decoder.decode(&stream, &image)?;
    let components = image.components();
    let pixels = width as usize * height as usize;
    let planes = components
        .iter()
        .map(|c| plane(c, width, height, pixels))
        .collect::<Result<Vec<_>>>()?;
    Ok((0..pixels)
        .flat_map(|i| planes.iter().map(move |plane| plane[i] as u32 & mask))
        .collect())
}

/// A component's decoded samples, which must cover the whole image: a
/// subsampled component (XRsiz/YRsiz above 1) is refused, not upsampled.
fn plane(
    component: &opj::opj_image_comp,
    width: u32,
    height: u32,
    pixels: usize,
) -> Result<&[i32]> {
    if component.data.is_null() {
        return Err(Error::DicomInvalid(
            "OpenJPEG decoded a JPEG 2000 component to no samples".into(),
        ));
    }
    if component.w != width || component.h != height {
        return Err(Error::DicomUnsupported(format!(
            "a JPEG 2000 component of {}x{} samples (subsampled by {}x{}) in a {width}x{height} image",
            component.w, component.h, component.dx, component.dy
        )));
    }
    // SAFETY: OpenJPEG allocated `w * h` samples for a decoded component.
    Ok(unsafe { std::slice::from_raw_parts(component.data, pixels) })
}

/// The threads one decode may use: the CPUs this process may run on.
fn threads() -> i32 {
    let cpus = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    // One worker thread would only make the calling thread wait for it.
    if cpus > 1 {
        i32::try_from(cpus).unwrap_or(i32::MAX)
    } else {
        0
    }
}

struct Decoder {
    codec: *mut opj::opj_codec_t,
    /// Boxed: the error handler holds its address, which must not move with the decoder.
    errors: Box<Errors>,
}

/// OpenJPEG's error messages for one decode; a corrupt stream can raise one
/// per code-block, so only the first few are kept.
#[derive(Default)]
struct Errors {
    kept: Vec<String>,
    more: usize,
}

const KEPT_ERRORS: usize = 4;

impl Errors {
    fn reason(&self) -> String {
        match (self.kept.join("; "), self.more) {
            (kept, _) if kept.is_empty() => "the codestream is corrupt".to_owned(),
            (kept, 0) => kept,
            (kept, more) => format!("{kept}; and {more} more"),
        }
    }
}

impl Decoder {
    fn new(format: opj::CODEC_FORMAT) -> Result<Self> {
        let unavailable = || Error::DicomUnsupported("cannot set up the JPEG 2000 decoder".into());
        // SAFETY: opj_create_decompress has no preconditions; null is checked.
        let codec = unsafe { opj::opj_create_decompress(format) };
        if codec.is_null() {
            return Err(unavailable());
        }
        let mut decoder = Self {
            codec,
            errors: Box::default(),
        };
        let errors: *mut Errors = &mut *decoder.errors;
        // SAFETY: the parameters are initialised by OpenJPEG before use; the
        // handler's `errors` lives as long as the codec that calls it.
        let ready = unsafe {
            let mut parameters = std::mem::zeroed::<opj::opj_dparameters_t>();
            opj::opj_set_default_decoder_parameters(&mut parameters);
            opj::opj_set_error_handler(codec, Some(collect_error), errors.cast()) == 1
                && opj::opj_setup_decoder(codec, &mut parameters) == 1
                && opj::opj_codec_set_threads(codec, threads()) == 1
        };
        if ready {
            Ok(decoder)
        } else {
            Err(unavailable())
        }
    }

    /// The image as the main header declares it, without sample buffers yet.
    fn read_header(&self, stream: &Stream) -> Result<Image> {
        let mut image = Image(std::ptr::null_mut());
        // SAFETY: codec and stream are live; OpenJPEG allocates the image,
        // which `Image` frees even when reading fails.
        let read = unsafe { opj::opj_read_header(stream.0, self.codec, &mut image.0) } == 1;
        if read && !image.0.is_null() {
            Ok(image)
        } else {
            Err(self.failed())
        }
    }

    /// Decodes the whole image into `image`'s components.
    fn decode(&self, stream: &Stream, image: &Image) -> Result<()> {
        // SAFETY: codec, stream and image are live, the image read by this codec.
        let decoded = unsafe {
            opj::opj_decode(self.codec, stream.0, image.0) == 1
                && opj::opj_end_decompress(self.codec, stream.0) == 1
        };
        if decoded { Ok(()) } else { Err(self.failed()) }
    }

    fn failed(&self) -> Error {
        Error::DicomInvalid(format!("OpenJPEG: {}", self.errors.reason()))
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        // SAFETY: created by opj_create_decompress and destroyed once.
        unsafe { opj::opj_destroy_codec(self.codec) }
    }
}

/// OpenJPEG's worker threads report under a mutex, and the decoding thread
/// waits for them, so one message is added at a time.
unsafe extern "C" fn collect_error(message: *const c_char, errors: *mut c_void) {
    // SAFETY: OpenJPEG passes a NUL-terminated message and the pointer given
    // to opj_set_error_handler, the decoder's live `errors`.
    let (message, errors) = unsafe { (CStr::from_ptr(message), &mut *errors.cast::<Errors>()) };
    if errors.kept.len() < KEPT_ERRORS {
        errors
            .kept
            .push(message.to_string_lossy().trim().to_owned());
    } else {
        errors.more += 1;
    }
}

struct Image(*mut opj::opj_image_t);

impl Image {
    /// Width, height and component count.
    fn size(&self) -> (u32, u32, u32) {
        // SAFETY: a live image read by OpenJPEG.
        let image = unsafe { &*self.0 };
        (
            image.x1.saturating_sub(image.x0),
            image.y1.saturating_sub(image.y0),
            image.numcomps,
        )
    }

    fn components(&self) -> &[opj::opj_image_comp] {
        // SAFETY: a decoded image holds `numcomps` components at `comps`.
        unsafe {
            let image = &*self.0;
            if image.comps.is_null() {
                return &[];
            }
            std::slice::from_raw_parts(image.comps, image.numcomps as usize)
        }
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: allocated by opj_read_header and destroyed once.
            unsafe { opj::opj_image_destroy(self.0) }
        }
    }
}

/// The bytes OpenJPEG reads through the stream callbacks below.
struct Source<'a> {
    data: &'a [u8],
    offset: usize,
}

/// An input stream over a `Source`, which it borrows.
struct Stream<'a>(*mut opj::opj_stream_t, PhantomData<&'a mut Source<'a>>);

impl<'a> Stream<'a> {
    fn new(source: &'a mut Source<'a>) -> Result<Self> {
        // SAFETY: opj_stream_default_create has no preconditions; null is checked.
        let stream = unsafe { opj::opj_stream_default_create(1) };
        if stream.is_null() {
            return Err(Error::DicomUnsupported(
                "cannot set up the JPEG 2000 stream".into(),
            ));
        }
        // SAFETY: `source` outlives the stream, which borrows it; no free
        // function, as Rust owns it.
        unsafe {
            opj::opj_stream_set_read_function(stream, Some(read));
            opj::opj_stream_set_skip_function(stream, Some(skip));
            opj::opj_stream_set_seek_function(stream, Some(seek));
            opj::opj_stream_set_user_data_length(stream, source.data.len() as u64);
            opj::opj_stream_set_user_data(stream, (source as *mut Source).cast(), None);
        }
        Ok(Self(stream, PhantomData))
    }
}

impl Drop for Stream<'_> {
    fn drop(&mut self) {
        // SAFETY: created by opj_stream_default_create and destroyed once.
        unsafe { opj::opj_stream_destroy(self.0) }
    }
}

/// OpenJPEG's "no bytes": (OPJ_SIZE_T)-1 for reads, -1 for skips.
const END: usize = usize::MAX;

unsafe extern "C" fn read(buffer: *mut c_void, len: usize, source: *mut c_void) -> usize {
    // SAFETY: the user data is the stream's `Source`; `buffer` has room for `len` bytes.
    let source = unsafe { &mut *source.cast::<Source>() };
    let rest = &source.data[source.offset..];
    if rest.is_empty() || buffer.is_null() {
        return END;
    }
    let n = rest.len().min(len);
    // SAFETY: as above; `n` is within both.
    unsafe { std::ptr::copy_nonoverlapping(rest.as_ptr(), buffer.cast::<u8>(), n) };
    source.offset += n;
    n
}

/// OpenJPEG only skips within the length it was given, so a skip past the end
/// is an error.
unsafe extern "C" fn skip(len: i64, source: *mut c_void) -> i64 {
    // SAFETY: the user data is the stream's `Source`.
    let source = unsafe { &mut *source.cast::<Source>() };
    match usize::try_from(len) {
        Ok(n) if n <= source.data.len() - source.offset => {
            source.offset += n;
            len
        }
        _ => -1,
    }
}

unsafe extern "C" fn seek(offset: i64, source: *mut c_void) -> i32 {
    // SAFETY: the user data is the stream's `Source`.
    let source = unsafe { &mut *source.cast::<Source>() };
    match usize::try_from(offset) {
        Ok(at) if at <= source.data.len() => {
            source.offset = at;
            1
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::CString;

    use super::{Errors, collect_error};

    #[test]
    fn the_first_four_errors_are_kept_and_the_rest_counted() {
        let mut errors = Errors::default();
        assert_eq!(errors.reason(), "the codestream is corrupt");
        for i in 1..=6 {
            let message = CString::new(format!("error {i}\n")).unwrap();
            // SAFETY: a NUL-terminated message and a live `Errors`, as OpenJPEG passes them.
            unsafe { collect_error(message.as_ptr(), (&raw mut errors).cast()) };
            if i == 1 {
                assert_eq!(errors.reason(), "error 1");
            }
        }
        assert_eq!(
            errors.reason(),
            "error 1; error 2; error 3; error 4; and 2 more"
        );
    }
}
