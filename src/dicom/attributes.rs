//! Lenient typed reads of data elements: a value that is absent, empty or
//! unparsable reads as `None`, so one odd attribute never fails a render.

use dicom_core::{PrimitiveValue, Tag, value::Value};
use dicom_object::InMemDicomObject;

pub(crate) type Object = InMemDicomObject;

pub(crate) fn primitive(obj: &Object, tag: Tag) -> Option<&PrimitiveValue> {
    match obj.get(tag)?.value() {
        Value::Primitive(PrimitiveValue::Empty) => None,
        Value::Primitive(p) => Some(p),
        _ => None,
    }
}

pub(crate) fn string(obj: &Object, tag: Tag) -> Option<String> {
    let text = primitive(obj, tag)?.to_str();
    let text = text.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    (!text.is_empty()).then(|| text.to_owned())
}

pub(crate) fn int(obj: &Object, tag: Tag) -> Option<i64> {
    primitive(obj, tag)?.to_int::<i64>().ok()
}

pub(crate) fn uint(obj: &Object, tag: Tag) -> Option<u32> {
    int(obj, tag).and_then(|v| u32::try_from(v).ok())
}

pub(crate) fn ints(obj: &Object, tag: Tag) -> Option<Vec<i64>> {
    primitive(obj, tag)?.to_multi_int::<i64>().ok()
}

pub(crate) fn float(obj: &Object, tag: Tag) -> Option<f64> {
    floats(obj, tag)?.first().copied()
}

pub(crate) fn floats(obj: &Object, tag: Tag) -> Option<Vec<f64>> {
    let values = primitive(obj, tag)?.to_multi_float64().ok()?;
    (!values.is_empty() && values.iter().all(|v| v.is_finite())).then_some(values)
}

pub(crate) fn items(obj: &Object, tag: Tag) -> &[Object] {
    obj.get(tag).and_then(|e| e.items()).unwrap_or(&[])
}

pub(crate) fn first_item(obj: &Object, tag: Tag) -> Option<&Object> {
    items(obj, tag).first()
}

/// LUT Data is OW or US; each word is one entry unless 8-bit entries were
/// packed two per word, which is told apart by the byte count.
pub(crate) fn lut_words(obj: &Object, tag: Tag, entries: usize, bits: u32) -> Option<Vec<u16>> {
    let words: Vec<u16> = match primitive(obj, tag)? {
        PrimitiveValue::U16(values) => values.to_vec(),
        PrimitiveValue::I16(values) => values.iter().map(|&v| v as u16).collect(),
        PrimitiveValue::U8(bytes) if bits <= 8 && bytes.len() == entries => {
            return Some(bytes.iter().map(|&b| u16::from(b)).collect());
        }
        PrimitiveValue::U8(bytes) => bytes
            .chunks_exact(2)
            .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
            .collect(),
        _ => return None,
    };
    if bits <= 8 && words.len() * 2 == entries {
        return Some(
            words
                .iter()
                .flat_map(|w| w.to_le_bytes())
                .map(u16::from)
                .collect(),
        );
    }
    Some(words)
}

/// A LUT Descriptor: number of entries (0 means 65536), first mapped value
/// and bits per entry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LutDescriptor {
    pub entries: usize,
    pub first_mapped: i64,
    pub bits: u32,
}

/// `signed_input` says the first mapped value is an SS even when the file
/// was read with VR US (implicit VR), as in PS3.3 C.11.1.1.
pub(crate) fn lut_descriptor(obj: &Object, tag: Tag, signed_input: bool) -> Option<LutDescriptor> {
    let values = ints(obj, tag)?;
    let [entries, first_mapped, bits] = values.get(..3)?.try_into().ok()?;
    let entries = match entries {
        0 => 65536,
        1..=65535 => entries as usize,
        _ => return None,
    };
    let first_mapped = if signed_input && first_mapped > i64::from(i16::MAX) {
        first_mapped - 65536
    } else {
        first_mapped
    };
    let bits = u32::try_from(bits).ok().filter(|b| (1..=16).contains(b))?;
    Some(LutDescriptor {
        entries,
        first_mapped,
        bits,
    })
}
