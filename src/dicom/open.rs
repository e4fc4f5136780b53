//! Parsing untrusted bytes into a DICOM object.
//!
//! dicom-parser reserves and zero-fills each value's declared length before
//! reading it, so a corrupt 4 GiB length costs 4 GiB of memory. A cheap scan of
//! the element headers first rejects any value longer than what is left of
//! the input, and any numeric value whose length would leave the parser out of
//! step with the scan, which bounds every allocation by the input size.

use std::borrow::Cow;
use std::io::{Read, Write};
use std::path::Path;

use dicom_core::{Tag, VR};
use dicom_dictionary_std::{StandardDataDictionary, tags};
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, OpenFileOptions};
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use super::guard::guarded;
use crate::error::{Error, Result};

/// Largest inflated data set accepted from the Deflated transfer syntax.
const MAX_INFLATED_BYTES: u64 = 512 << 20;

const DEFLATED_EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1.99";
const EXPLICIT_VR_BE: &str = "1.2.840.10008.1.2.2";
const IMPLICIT_VR_LE: &str = "1.2.840.10008.1.2";

const ITEM: Tag = Tag(0xFFFE, 0xE000);
const ITEM_DELIMITER: Tag = Tag(0xFFFE, 0xE00D);
const SEQUENCE_DELIMITER: Tag = Tag(0xFFFE, 0xE0DD);
const UNDEFINED: u32 = u32::MAX;

/// Reads a file to render or ingest. Only regular files: a device such as
/// `/dev/zero` never ends, and opening a FIFO blocks until a writer comes.
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    let shown = path.display().to_string();
    let io_error = |e| Error::from_io(e, &shown);
    let meta = std::fs::metadata(path).map_err(io_error)?;
    if !meta.is_file() {
        let kind = if meta.is_dir() {
            "a directory"
        } else {
            "a device, FIFO or socket"
        };
        return Err(Error::DicomInvalid(format!(
            "{shown} is {kind}, not a DICOM file"
        )));
    }
    let mut file = std::fs::File::open(path).map_err(io_error)?;
    // The magic first, so that a large file that is not DICOM (a video, a disk
    // image) is refused without reading it into memory.
    let mut bytes = Vec::with_capacity(MAGIC_END);
    (&mut file)
        .take(MAGIC_END as u64)
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    strip_preamble(&bytes)?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(Error::DicomUnsupported(format!(
            "{shown} is {} bytes: files over 4 GiB are too large to read into memory",
            meta.len()
        )));
    }
    let rest = meta.len().saturating_sub(bytes.len() as u64);
    bytes.reserve_exact(rest as usize);
    file.take(rest).read_to_end(&mut bytes).map_err(io_error)?;
    Ok(bytes)
}

/// Where the "DICM" magic ends, after the 128-byte preamble.
const MAGIC_END: usize = 132;

/// Native Pixel Data's length is a 32-bit field, so only encapsulated
/// multi-frame files come near this; a sparse file can claim terabytes.
const MAX_FILE_BYTES: u64 = 4 << 30;

/// Opens a Part 10 file from memory. `with_pixel_data: false` stops before
/// Pixel Data, which is all that metadata needs.
pub(crate) fn open(bytes: &[u8], with_pixel_data: bool) -> Result<DefaultDicomObject> {
    let body = strip_preamble(bytes)?;
    let (magic, rest) = body.split_at(4);
    let checked = check_lengths(rest)?;
    let mut options = OpenFileOptions::new().read_preamble(ReadPreamble::Never);
    if !with_pixel_data {
        options = options.read_until(tags::PIXEL_DATA);
    }
    guarded("parsing the data set", || {
        options.from_reader(magic.chain(checked.as_ref()))
    })?
    .map_err(|e| Error::DicomInvalid(format!("cannot parse the file: {e}")))
}

/// The body starts at the "DICM" magic, which the meta group reader expects.
fn strip_preamble(bytes: &[u8]) -> Result<&[u8]> {
    if bytes.get(MAGIC_END - 4..MAGIC_END) == Some(b"DICM") {
        Ok(&bytes[128..])
    } else if bytes.starts_with(b"DICM") {
        Ok(bytes)
    } else if bytes.is_empty() {
        Err(Error::DicomInvalid("the input is empty".into()))
    } else {
        Err(Error::DicomInvalid(
            "not a DICOM Part 10 file: no 'DICM' marker at offset 128".into(),
        ))
    }
}

#[derive(Clone, Copy)]
struct Encoding {
    explicit_vr: bool,
    big_endian: bool,
}

impl Encoding {
    const META: Self = Self {
        explicit_vr: true,
        big_endian: false,
    };

    fn u16(self, b: [u8; 2]) -> u16 {
        if self.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }
    }

    fn u32(self, b: [u8; 4]) -> u32 {
        if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    }
}

/// Checks the file meta group, then the data set in the encoding it names.
/// Returns the meta group and the data set without any zero padding after it.
fn check_lengths(body: &[u8]) -> Result<Cow<'_, [u8]>> {
    let meta_len = meta_group_length(body)?;
    let (meta, dataset) = body.split_at(meta_len.min(body.len()));
    scan(meta, Encoding::META)?;
    let ts = transfer_syntax(meta).ok_or_else(|| {
        Error::DicomInvalid("the file meta group has no Transfer Syntax UID".into())
    })?;
    if TransferSyntaxRegistry.get(&ts).is_none() {
        return Err(Error::DicomUnsupported(format!(
            "unknown transfer syntax {ts}"
        )));
    }
    let data_set_end = match ts.as_str() {
        DEFLATED_EXPLICIT_VR_LE => return without_deflated_padding(body, meta.len()),
        EXPLICIT_VR_BE => scan(
            dataset,
            Encoding {
                explicit_vr: true,
                big_endian: true,
            },
        ),
        IMPLICIT_VR_LE => scan(
            dataset,
            Encoding {
                explicit_vr: false,
                big_endian: false,
            },
        ),
        _ => scan(dataset, Encoding::META),
    }?;
    Ok(Cow::Borrowed(&body[..meta.len() + data_set_end]))
}

/// The parser inflates a deflated data set itself, so zero padding inside the
/// stream is cut by compressing again what comes before it (only then).
fn without_deflated_padding(body: &[u8], meta_len: usize) -> Result<Cow<'_, [u8]>> {
    let (meta, dataset) = body.split_at(meta_len);
    let inflated = inflate(dataset)?;
    let end = scan(&inflated, Encoding::META)?;
    if end == inflated.len() {
        return Ok(Cow::Borrowed(body));
    }
    let mut deflater =
        flate2::write::DeflateEncoder::new(meta.to_vec(), flate2::Compression::fast());
    deflater
        .write_all(&inflated[..end])
        .and_then(|()| deflater.finish())
        .map(Cow::Owned)
        .map_err(|e| Error::DicomInvalid(format!("cannot deflate the data set again: {e}")))
}

/// File Meta Information Group Length is the first element (PS3.10 7.1).
fn meta_group_length(body: &[u8]) -> Result<usize> {
    match body.get(..12) {
        Some(&[0x02, 0x00, 0x00, 0x00, b'U', b'L', 4, 0, a, b, c, d]) => {
            Ok(12 + u32::from_le_bytes([a, b, c, d]) as usize)
        }
        _ => Err(Error::DicomInvalid(
            "the file meta group does not start with its group length".into(),
        )),
    }
}

fn transfer_syntax(meta: &[u8]) -> Option<String> {
    let mut pos = 0;
    while let Some(header) = Header::read(meta, pos, Encoding::META) {
        let end = header.value_start.checked_add(header.len as usize)?;
        if header.tag == tags::TRANSFER_SYNTAX_UID {
            let value = meta.get(header.value_start..end)?;
            let text = std::str::from_utf8(value).ok()?;
            return Some(text.trim_end_matches(['\0', ' ']).to_owned());
        }
        pos = end;
    }
    None
}

fn inflate(dataset: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(dataset)
        .take(MAX_INFLATED_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::DicomInvalid(format!("cannot inflate the deflated data set: {e}")))?;
    if out.len() as u64 > MAX_INFLATED_BYTES {
        return Err(Error::DicomUnsupported(format!(
            "the deflated data set inflates to more than {} MiB",
            MAX_INFLATED_BYTES >> 20
        )));
    }
    Ok(out)
}

struct Header {
    tag: Tag,
    vr: Option<VR>,
    len: u32,
    value_start: usize,
}

impl Header {
    fn read(data: &[u8], pos: usize, enc: Encoding) -> Option<Self> {
        let word = |at: usize| data.get(at..at + 2).map(|b| enc.u16([b[0], b[1]]));
        let dword = |at: usize| {
            data.get(at..at + 4)
                .map(|b| enc.u32([b[0], b[1], b[2], b[3]]))
        };
        let tag = Tag(word(pos)?, word(pos + 2)?);
        if tag.group() == 0xFFFE || !enc.explicit_vr {
            return Some(Self {
                tag,
                vr: None,
                len: dword(pos + 4)?,
                value_start: pos + 8,
            });
        }
        // The parser reads an unknown VR as UN, so do we.
        let vr = VR::from_binary([*data.get(pos + 4)?, *data.get(pos + 5)?]).unwrap_or(VR::UN);
        if has_long_length(vr) {
            Some(Self {
                tag,
                vr: Some(vr),
                len: dword(pos + 8)?,
                value_start: pos + 12,
            })
        } else {
            Some(Self {
                tag,
                vr: Some(vr),
                len: u32::from(word(pos + 6)?),
                value_start: pos + 8,
            })
        }
    }

    /// The VR the parser reads the value as: the header's, or in implicit VR
    /// the dictionary's, with Pixel Data and Overlay Data read as OW.
    fn value_vr(&self) -> Option<VR> {
        use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
        if self.vr.is_some() {
            return self.vr;
        }
        if self.tag == tags::PIXEL_DATA
            || (self.tag.group() >> 8 == 0x60 && self.tag.element() == 0x3000)
        {
            return Some(VR::OW);
        }
        StandardDataDictionary
            .by_tag(self.tag)
            .map(|entry| entry.vr().relaxed())
    }

    /// Whether the parser reads the value as a sequence rather than bytes.
    fn is_container(&self) -> bool {
        self.len == UNDEFINED || self.value_vr() == Some(VR::SQ)
    }

    /// The parser reads `len / size` numbers of a numeric VR but counts `len`
    /// bytes as read, so a remainder leaves it out of step with the data: it
    /// then reads headers from inside values, where any length can appear.
    fn check_value_size(&self) -> Result<()> {
        let Some(vr) = self.value_vr() else {
            return Ok(());
        };
        let size = value_size(vr);
        if (self.len as usize).is_multiple_of(size) {
            return Ok(());
        }
        Err(Error::DicomInvalid(format!(
            "element {} ({vr}) is {} bytes long, not a multiple of its {size}-byte values",
            self.tag, self.len
        )))
    }
}

/// Bytes per value of the VRs the parser reads as numbers.
fn value_size(vr: VR) -> usize {
    use VR::*;
    match vr {
        SS | US | OW => 2,
        AT | FL | OF | SL | UL | OL => 4,
        FD | OD | SV | UV | OV => 8,
        _ => 1,
    }
}

fn has_long_length(vr: VR) -> bool {
    use VR::*;
    matches!(
        vr,
        OB | OD | OF | OL | OV | OW | SQ | SV | UC | UN | UR | UT | UV
    )
}

#[derive(Clone, Copy, PartialEq)]
enum Container {
    Sequence,
    Item,
    /// Encapsulated Pixel Data: items are opaque fragments.
    Fragments,
}

/// Walks the element headers with a stack of open sequences and items,
/// checking every value fits in what is left of its container and the input.
/// Anything structurally odd (stray delimiters or items, elements crossing a
/// container's end) is rejected, so whenever this scan accepts, the parser
/// sees the same elements and allocates at most their checked lengths.
/// A header cut short ends the scan; the parser then reports the truncation.
/// Zero bytes after the last top-level element (disk blocks, a transfer padded
/// to a record size) are not elements: the data set is taken to end there, so
/// how many there are cannot decide whether the file opens.
fn scan(data: &[u8], enc: Encoding) -> Result<usize> {
    let malformed = |what: String| Err(Error::DicomInvalid(format!("malformed data set: {what}")));
    let mut stack: Vec<(Container, Option<usize>)> = Vec::new();
    let mut pos = 0;
    loop {
        while let Some(&(_, Some(end))) = stack.last() {
            if pos < end {
                break;
            }
            if pos > end {
                return malformed(format!(
                    "an element crosses the end of its container at byte {end}"
                ));
            }
            stack.pop();
        }
        if stack.is_empty()
            && data
                .get(pos..)
                .is_some_and(|rest| rest.iter().all(|&b| b == 0))
        {
            return Ok(pos);
        }
        let Some(header) = Header::read(data, pos, enc) else {
            return Ok(data.len());
        };
        let limit = stack
            .iter()
            .rev()
            .find_map(|&(_, end)| end)
            .unwrap_or(data.len())
            .min(data.len());
        let remaining = limit.saturating_sub(header.value_start);
        let defined = (header.len != UNDEFINED).then_some(header.len as usize);
        if defined.is_some_and(|len| len > remaining) {
            return Err(Error::DicomInvalid(format!(
                "element {} declares {} bytes but only {remaining} remain",
                header.tag, header.len
            )));
        }
        let end = defined.map(|len| header.value_start + len);
        let innermost = stack.last().map(|&(kind, end)| (kind, end.is_none()));
        pos = header.value_start;
        match (innermost, header.tag) {
            (Some((Container::Sequence, _)), ITEM) => stack.push((Container::Item, end)),
            (Some((Container::Fragments, _)), ITEM) if end.is_some() => pos += header.len as usize,
            (Some((Container::Sequence | Container::Fragments, true)), SEQUENCE_DELIMITER) => {
                stack.pop();
            }
            (Some((Container::Item, true)), ITEM_DELIMITER) => {
                stack.pop();
            }
            // The parser tolerates (and skips) a stray item delimiter here.
            (None, ITEM_DELIMITER) => {}
            (Some((Container::Sequence | Container::Fragments, _)), tag) => {
                return malformed(format!("{tag} where a sequence item was expected"));
            }
            (_, tag) if tag.group() == 0xFFFE => {
                return malformed(format!("unexpected {tag} among data elements"));
            }
            (_, tags::PIXEL_DATA) if end.is_none() => stack.push((Container::Fragments, None)),
            _ if header.is_container() => stack.push((Container::Sequence, end)),
            _ => {
                header.check_value_size()?;
                pos += header.len as usize;
            }
        }
    }
}
