//! Image geometry checks and extraction of one frame's stored sample values.

use std::borrow::Cow;

use dicom_core::{PrimitiveValue, value::Value};
use dicom_dictionary_std::tags;
use dicom_encoding::{Codec, TransferSyntaxIndex};
use dicom_object::DefaultDicomObject;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use super::attributes::{Object, string, uint};
use super::guard::guarded;
use super::{codestream, j2k, jpeg};
use crate::error::{Error, Result};

/// Largest decoded frame accepted, in bytes of stored samples.
pub const MAX_FRAME_BYTES: u64 = 256 << 20;
/// Largest rows or columns accepted.
pub const MAX_DIMENSION: u32 = 32768;

/// JPEG baseline and extended: libjpeg-turbo turns their YCbCr into RGB.
const LOSSY_JPEG: [&str; 2] = ["1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"];
/// JPEG lossless and lossless SV1: decoded without any colour conversion.
const LOSSLESS_JPEG: [&str; 2] = ["1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70"];
/// JPEG 2000 and High-Throughput JPEG 2000, whose codestreams carry YBR_RCT
/// and YBR_ICT as a component transform that OpenJPEG undoes.
const JPEG_2000: [&str; 7] = [
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.92",
    "1.2.840.10008.1.2.4.93",
    "1.2.840.10008.1.2.4.201",
    "1.2.840.10008.1.2.4.202",
    "1.2.840.10008.1.2.4.203",
];
/// JPEG-LS lossless and near-lossless.
const JPEG_LS: [&str; 2] = ["1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"];
/// Colour spaces that name a codec's own transform (PS3.3 C.7.6.3.1.2).
const CODEC_YBR: [&str; 4] = ["YBR_RCT", "YBR_ICT", "YBR_PARTIAL_422", "YBR_PARTIAL_420"];
const RLE_LOSSLESS: &str = "1.2.840.10008.1.2.5";

/// A decompression bomb guard, dicom-rs's for RLE and JPEG 2000 applied to every
/// codec: a frame of 16 MiB or more must come from at least 1/64 of its size.
/// A black 8192² RGB JPEG is 390 KB and decodes to 192 MiB, and more on the way
/// to pixels.
const BOMB_FRAME_BYTES: usize = 16 << 20;
const MAX_COMPRESSION_RATIO: usize = 64;
/// OpenJPEG allocates a few hundred bytes for every code-block before it decodes
/// any: a 4096² 16-bit frame (32 MiB) with 4×4 blocks peaked at 459 MiB against
/// 245 MiB with 64×64 blocks, and the extra grows with the frame, to gigabytes
/// at our largest. On a frame of `BOMB_FRAME_BYTES` or more, blocks below 16×16
/// (encoders use 64×64 or 32×32) are refused: they would cost more than the frame.
const MIN_J2K_CODE_BLOCK: u32 = 16 * 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Photometric {
    Monochrome1,
    Monochrome2,
    PaletteColor,
    Rgb,
    YbrFull,
    YbrFull422,
    /// YBR_RCT, YBR_ICT, YBR_PARTIAL_*: only produced by codecs that return RGB.
    YbrCodec(&'static str),
}

impl Photometric {
    fn parse(value: &str, samples_per_pixel: u16) -> Result<Self> {
        let photometric = match (value, samples_per_pixel) {
            ("MONOCHROME1", 1) => Self::Monochrome1,
            ("MONOCHROME2", 1) => Self::Monochrome2,
            ("PALETTE COLOR", 1) => Self::PaletteColor,
            ("RGB", 3) => Self::Rgb,
            ("YBR_FULL", 3) => Self::YbrFull,
            ("YBR_FULL_422", 3) => Self::YbrFull422,
            (_, 3) if let Some(&name) = CODEC_YBR.iter().find(|&&name| name == value) => {
                Self::YbrCodec(name)
            }
            _ => {
                return Err(Error::DicomUnsupported(format!(
                    "photometric interpretation {value:?} with {samples_per_pixel} sample(s) per pixel"
                )));
            }
        };
        Ok(photometric)
    }

    pub(crate) fn is_grayscale(self) -> bool {
        matches!(self, Self::Monochrome1 | Self::Monochrome2)
    }
}

/// The Image Pixel module attributes that decoding depends on, validated.
#[derive(Debug, Clone)]
pub(crate) struct ImageInfo {
    pub rows: u32,
    pub cols: u32,
    pub frames: u32,
    pub samples_per_pixel: u16,
    pub bits_allocated: u16,
    pub bits_stored: u16,
    pub signed: bool,
    pub photometric: Photometric,
    pub planar: bool,
}

impl ImageInfo {
    pub(crate) fn read(obj: &Object) -> Result<Self> {
        match obj.get(tags::PIXEL_DATA).map(|e| e.value()) {
            None if obj.get(tags::FLOAT_PIXEL_DATA).is_some()
                || obj.get(tags::DOUBLE_FLOAT_PIXEL_DATA).is_some() =>
            {
                return Err(Error::DicomUnsupported(
                    "float pixel data cannot be rendered".into(),
                ));
            }
            None => {
                return Err(Error::DicomUnsupported(
                    "the object has no Pixel Data (it is not an image)".into(),
                ));
            }
            Some(Value::Sequence(_)) => {
                return Err(Error::DicomInvalid("Pixel Data is a sequence".into()));
            }
            Some(_) => {}
        }
        let required = |tag, name: &str| {
            uint(obj, tag)
                .ok_or_else(|| Error::DicomInvalid(format!("{name} is missing or invalid")))
        };
        let rows = required(tags::ROWS, "Rows")?;
        let cols = required(tags::COLUMNS, "Columns")?;
        let samples_per_pixel = required(tags::SAMPLES_PER_PIXEL, "Samples per Pixel")?;
        let bits_allocated = required(tags::BITS_ALLOCATED, "Bits Allocated")?;
        let bits_stored = uint(obj, tags::BITS_STORED).unwrap_or(bits_allocated);
        let frames = uint(obj, tags::NUMBER_OF_FRAMES).unwrap_or(1);
        if rows == 0 || cols == 0 || frames == 0 {
            return Err(Error::DicomInvalid(format!(
                "empty image: {cols}x{rows} with {frames} frame(s)"
            )));
        }
        if rows > MAX_DIMENSION || cols > MAX_DIMENSION {
            return Err(Error::DicomUnsupported(format!(
                "image of {cols}x{rows} exceeds the {MAX_DIMENSION} pixel limit"
            )));
        }
        if !matches!(samples_per_pixel, 1 | 3) {
            return Err(Error::DicomUnsupported(format!(
                "{samples_per_pixel} samples per pixel"
            )));
        }
        if !matches!(bits_allocated, 8 | 16) {
            return Err(Error::DicomUnsupported(format!(
                "{bits_allocated} bits allocated (8 and 16 are supported)"
            )));
        }
        if bits_stored == 0 || bits_stored > bits_allocated {
            return Err(Error::DicomInvalid(format!(
                "bits stored {bits_stored} with bits allocated {bits_allocated}"
            )));
        }
        let frame_bytes = u64::from(rows)
            * u64::from(cols)
            * u64::from(samples_per_pixel)
            * u64::from(bits_allocated / 8);
        if frame_bytes > MAX_FRAME_BYTES {
            return Err(Error::DicomUnsupported(format!(
                "a frame of {cols}x{rows}x{samples_per_pixel} needs {} MiB, over the {} MiB limit",
                frame_bytes >> 20,
                MAX_FRAME_BYTES >> 20
            )));
        }
        let photometric = string(obj, tags::PHOTOMETRIC_INTERPRETATION)
            .ok_or_else(|| Error::DicomInvalid("Photometric Interpretation is missing".into()))?;
        let samples_per_pixel = samples_per_pixel as u16;
        Ok(Self {
            rows,
            cols,
            frames,
            samples_per_pixel,
            bits_allocated: bits_allocated as u16,
            bits_stored: bits_stored as u16,
            signed: uint(obj, tags::PIXEL_REPRESENTATION) == Some(1),
            photometric: Photometric::parse(&photometric, samples_per_pixel)?,
            planar: samples_per_pixel > 1 && uint(obj, tags::PLANAR_CONFIGURATION) == Some(1),
        })
    }

    pub(crate) fn pixels(&self) -> usize {
        self.rows as usize * self.cols as usize
    }

    fn samples(&self) -> usize {
        self.pixels() * usize::from(self.samples_per_pixel)
    }

    /// Native YBR_FULL_422 stores two luma samples and one Cb/Cr pair per
    /// two pixels (PS3.3 C.7.6.3.1.2).
    fn native_samples(&self) -> usize {
        if self.photometric == Photometric::YbrFull422 {
            self.pixels() * 2
        } else {
            self.samples()
        }
    }
}

/// One frame of stored values, interleaved per pixel, sign-extended.
pub(crate) struct Frame {
    pub samples: Vec<i32>,
    /// The codec already converted the colour space to RGB.
    pub codec_rgb: bool,
}

/// How a frame's samples come from the pixel data or its decoder.
enum SampleOrder {
    /// Whole pixels, one after another.
    Pixels,
    /// Planar configuration 1, or a JPEG-LS scan per component.
    Planes,
    /// Native YBR_FULL_422: two luma samples and one chroma pair per two pixels.
    Packed422,
}

pub(crate) fn frame(obj: &DefaultDicomObject, info: &ImageInfo, frame: u32) -> Result<Frame> {
    let pixel_data = obj
        .get(tags::PIXEL_DATA)
        .ok_or_else(|| Error::DicomUnsupported("the object has no Pixel Data".into()))?;
    let (raw, codec_rgb, order) = match pixel_data.value() {
        Value::Primitive(value) => {
            let codec_rgb = decoder_makes_rgb(None, info)?;
            let order = match info.photometric {
                Photometric::YbrFull422 => SampleOrder::Packed422,
                _ if info.planar => SampleOrder::Planes,
                _ => SampleOrder::Pixels,
            };
            (native_frame(value, info, frame)?, codec_rgb, order)
        }
        Value::PixelSequence(sequence) => {
            let ts = obj.meta().transfer_syntax();
            let codec_rgb = decoder_makes_rgb(Some(ts), info)?;
            let data = frame_fragments(
                sequence.fragments(),
                sequence.offset_table(),
                info.frames,
                frame,
            )?;
            screen_encapsulated(ts, sequence.fragments(), &data, info, frame)?;
            let samples = if LOSSY_JPEG.contains(&ts) || LOSSLESS_JPEG.contains(&ts) {
                let samples = guarded("decoding JPEG", || {
                    jpeg::decode(&data, info.cols, info.rows, info.samples_per_pixel)
                })??;
                samples.into_iter().map(u32::from).collect()
            } else if JPEG_2000.contains(&ts) {
                j2k::decode(&data, info)?
            } else {
                registry_decode(obj, info, frame, &data)?
            };
            // Other decoders hand back whole pixels, whatever the Planar Configuration says.
            let order = if JPEG_LS.contains(&ts) && codestream::jpeg_ls_planar(&data) {
                SampleOrder::Planes
            } else {
                SampleOrder::Pixels
            };
            (samples, codec_rgb, order)
        }
        Value::Sequence(_) => return Err(Error::DicomInvalid("Pixel Data is a sequence".into())),
    };
    let samples = stored_values(raw, info);
    let samples = match order {
        SampleOrder::Pixels => samples,
        SampleOrder::Planes => interleave(&samples, info.pixels()),
        SampleOrder::Packed422 => expand_422(&samples, info),
    };
    Ok(Frame { samples, codec_rgb })
}

/// Whether the decoder of `codec` (a transfer syntax, `None` for native data)
/// hands back RGB rather than the stored colour space. libjpeg-turbo converts
/// a lossy stream's YCbCr itself and OpenJPEG undoes a YBR_RCT or YBR_ICT
/// component transform; every other codec, lossless JPEG included, returns the
/// stored samples, so YBR_FULL is still ours to convert. A codec's own colour
/// space anywhere else leaves the samples' meaning unknown.
fn decoder_makes_rgb(codec: Option<&str>, info: &ImageInfo) -> Result<bool> {
    match (codec, info.photometric) {
        _ if info.samples_per_pixel != 3 => Ok(false),
        (Some(ts), _) if LOSSY_JPEG.contains(&ts) => Ok(true),
        (Some(ts), Photometric::YbrCodec(_)) if JPEG_2000.contains(&ts) => Ok(true),
        (_, Photometric::YbrCodec(name)) => {
            let pixel_data =
                codec.map_or_else(|| "native (uncompressed)".into(), transfer_syntax_name);
            Err(Error::DicomUnsupported(format!(
                "photometric interpretation {name} is the colour transform of a JPEG or \
                 JPEG 2000 codec, but the pixel data is {pixel_data}"
            )))
        }
        _ => Ok(false),
    }
}

fn transfer_syntax_name(uid: &str) -> String {
    TransferSyntaxRegistry
        .get(uid)
        .map_or_else(|| uid.to_owned(), |ts| format!("{} ({uid})", ts.name()))
}

/// What must hold before compressed data reaches a decoder: a plausible
/// compression ratio, and for RLE a sane segment table.
fn screen_encapsulated(
    ts: &str,
    fragments: &[Vec<u8>],
    data: &[u8],
    info: &ImageInfo,
    frame: u32,
) -> Result<()> {
    let frame_bytes = info.samples() * usize::from(info.bits_allocated / 8);
    if frame_bytes >= BOMB_FRAME_BYTES && data.len() < frame_bytes / MAX_COMPRESSION_RATIO {
        return Err(Error::DicomUnsupported(format!(
            "frame {frame} would decode {} bytes to {frame_bytes}, more than \
             {MAX_COMPRESSION_RATIO}:1, refused as a possible decompression bomb",
            data.len()
        )));
    }
    if JPEG_2000.contains(&ts)
        && frame_bytes >= BOMB_FRAME_BYTES
        && let Some(samples) = codestream::j2k_smallest_code_block(data)
        && samples < MIN_J2K_CODE_BLOCK
    {
        return Err(Error::DicomUnsupported(format!(
            "frame {frame} has JPEG 2000 code-blocks of {samples} samples, below \
             {MIN_J2K_CODE_BLOCK} in a frame of {frame_bytes} bytes, refused as a possible \
             memory bomb (the decoder allocates for each block before decoding)"
        )));
    }
    if ts == RLE_LOSSLESS {
        // The decoder reads fragment `frame`, whatever the offset table says.
        let fragment = fragments.get(frame as usize).map_or(&[][..], Vec::as_slice);
        let needed = usize::from(info.samples_per_pixel * info.bits_allocated / 8);
        codestream::check_rle_frame(fragment, needed, info.pixels())
            .map_err(|e| Error::DicomInvalid(format!("frame {frame}: {e}")))?;
    }
    Ok(())
}

/// Keeps the low `bits_stored` bits and sign-extends them if signed.
fn stored_values(raw: Vec<u32>, info: &ImageInfo) -> Vec<i32> {
    let bits = u32::from(info.bits_stored);
    let mask = ((1u64 << bits) - 1) as u32;
    let sign = 1u32 << (bits - 1);
    raw.into_iter()
        .map(|v| {
            let v = v & mask;
            if info.signed && v & sign != 0 {
                v as i32 - (1i64 << bits) as i32
            } else {
                v as i32
            }
        })
        .collect()
}

fn native_frame(value: &PrimitiveValue, info: &ImageInfo, frame: u32) -> Result<Vec<u32>> {
    if info.photometric == Photometric::YbrFull422 && info.cols % 2 == 1 {
        return Err(Error::DicomInvalid(format!(
            "native YBR_FULL_422 shares each chroma pair between two pixels of a row, \
             so its {} columns must be an even number",
            info.cols
        )));
    }
    let count = info.native_samples();
    let start = count * frame as usize;
    let range = start..start + count;
    let too_short = |available: usize| {
        Error::DicomInvalid(format!(
            "Pixel Data holds {available} samples, frame {frame} needs samples {}..{}",
            range.start, range.end
        ))
    };
    // Values parsed as 16-bit words are already in host order, whatever the
    // transfer syntax's byte order; bytes are little endian.
    match (value, info.bits_allocated) {
        (PrimitiveValue::U16(words), 16) => words
            .get(range.clone())
            .map(|w| w.iter().map(|&v| u32::from(v)).collect())
            .ok_or_else(|| too_short(words.len())),
        (PrimitiveValue::I16(words), 16) => words
            .get(range.clone())
            .map(|w| w.iter().map(|&v| u32::from(v as u16)).collect())
            .ok_or_else(|| too_short(words.len())),
        _ => {
            let bytes = value.to_bytes();
            let width = usize::from(info.bits_allocated / 8);
            let available = bytes.len() / width;
            let bytes = bytes
                .get(range.start * width..range.end * width)
                .ok_or_else(|| too_short(available))?;
            Ok(match width {
                1 => bytes.iter().map(|&b| u32::from(b)).collect(),
                _ => bytes
                    .chunks_exact(2)
                    .map(|p| u32::from(u16::from_le_bytes([p[0], p[1]])))
                    .collect(),
            })
        }
    }
}

/// The bytes of frame `frame`: one fragment per frame, or the Basic Offset
/// Table, or (without one) fragments grouped by codestream start markers.
fn frame_fragments<'a>(
    fragments: &'a [Vec<u8>],
    offsets: &[u32],
    frames: u32,
    frame: u32,
) -> Result<Cow<'a, [u8]>> {
    let frame = frame as usize;
    if fragments.len() == frames as usize {
        return Ok(Cow::Borrowed(&fragments[frame]));
    }
    if frames == 1 {
        return Ok(Cow::Owned(fragments.concat()));
    }
    let selected: Vec<&Vec<u8>> = if offsets.len() == frames as usize {
        let start = offsets[frame] as usize;
        let end = offsets.get(frame + 1).map_or(usize::MAX, |&o| o as usize);
        let mut position = 0usize;
        fragments
            .iter()
            .filter(|fragment| {
                let inside = (start..end).contains(&position);
                position = position.saturating_add(fragment.len() + 8);
                inside
            })
            .collect()
    } else {
        let mut current = None::<usize>;
        fragments
            .iter()
            .filter(|fragment| {
                if starts_codestream(fragment) {
                    current = Some(current.map_or(0, |c| c + 1));
                }
                current == Some(frame)
            })
            .collect()
    };
    if selected.is_empty() {
        return Err(Error::DicomInvalid(format!(
            "no encapsulated fragment holds frame {frame} ({} fragments for {frames} frames)",
            fragments.len()
        )));
    }
    Ok(Cow::Owned(
        selected.into_iter().flatten().copied().collect(),
    ))
}

fn starts_codestream(fragment: &[u8]) -> bool {
    fragment.starts_with(&[0xFF, 0xD8])
        || fragment.starts_with(&[0xFF, 0x4F, 0xFF, 0x51])
        || fragment.starts_with(&[0, 0, 0, 0x0C, b'j', b'P', b' ', b' '])
}

/// RLE, JPEG 2000 and JPEG-LS through dicom-rs's transfer syntax registry.
fn registry_decode(
    obj: &DefaultDicomObject,
    info: &ImageInfo,
    frame: u32,
    data: &[u8],
) -> Result<Vec<u32>> {
    let ts_uid = obj.meta().transfer_syntax();
    let ts = TransferSyntaxRegistry
        .get(ts_uid)
        .ok_or_else(|| Error::DicomUnsupported(format!("unknown transfer syntax {ts_uid}")))?;
    let decoder = match ts.codec() {
        Codec::EncapsulatedPixelData(Some(decoder), _) => decoder,
        Codec::EncapsulatedPixelData(None, _) => {
            return Err(Error::DicomUnsupported(format!(
                "no decoder for transfer syntax {}",
                transfer_syntax_name(ts_uid)
            )));
        }
        // A native syntax over compressed fragments: the file contradicts itself.
        _ => {
            return Err(Error::DicomInvalid(format!(
                "the pixel data is encapsulated (compressed fragments), but its transfer \
                 syntax {} is not an encapsulated one",
                transfer_syntax_name(ts_uid)
            )));
        }
    };
    if let Some((width, height, components)) = codestream::jpeg_ls_sof(data)
        && (width != info.cols || height != info.rows || components != info.samples_per_pixel)
    {
        return Err(Error::DicomInvalid(format!(
            "the {} codestream of frame {frame} is {width}x{height} with {components} component(s), \
             the data set says {}x{} with {}",
            ts.name(),
            info.cols,
            info.rows,
            info.samples_per_pixel
        )));
    }
    let mut out = Vec::new();
    guarded("decoding the pixel data", || {
        decoder.decode_frame(obj, frame, &mut out)
    })?
    .map_err(|e| {
        Error::DicomInvalid(format!("cannot decode frame {frame} ({}): {e}", ts.name()))
    })?;
    let width = usize::from(info.bits_allocated / 8);
    let needed = info.samples() * width;
    let out = out.get(..needed).ok_or_else(|| {
        Error::DicomInvalid(format!(
            "frame {frame} decoded to {} bytes, {needed} expected",
            out.len()
        ))
    })?;
    Ok(match width {
        1 => out.iter().map(|&b| u32::from(b)).collect(),
        _ => out
            .chunks_exact(2)
            .map(|p| u32::from(u16::from_le_bytes([p[0], p[1]])))
            .collect(),
    })
}

/// Planar configuration 1 (RRR…GGG…BBB…) to interleaved RGBRGB….
fn interleave(planes: &[i32], pixels: usize) -> Vec<i32> {
    (0..pixels)
        .flat_map(|i| [planes[i], planes[pixels + i], planes[2 * pixels + i]])
        .collect()
}

/// Y0 Y1 Cb Cr → Y0 Cb Cr Y1 Cb Cr.
fn expand_422(packed: &[i32], info: &ImageInfo) -> Vec<i32> {
    packed
        .chunks_exact(4)
        .flat_map(|q| [q[0], q[2], q[3], q[1], q[2], q[3]])
        .take(info.samples())
        .collect()
}
