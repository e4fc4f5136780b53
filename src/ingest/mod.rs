//! DICOM ingest: decode an instance once, then store the original, a WebP
//! rendition of frame 0 and its thumbnails under keys derived from the
//! instance's UIDs. Every write goes through [`Storage::put`], so the current
//! mode applies (dual-write included) and the default headers do too:
//! `.dcm` → `application/dicom`, immutable; `.webp` → `image/webp`, one day.
//!
//! ```text
//! dicom/{StudyInstanceUID}/{SeriesInstanceUID}/{SOPInstanceUID}.dcm
//! images/{StudyInstanceUID}/{SeriesInstanceUID}/{SOPInstanceUID}.webp
//! thumbnails/{SOPInstanceUID}_256.webp
//! thumbnails/{SOPInstanceUID}_64.webp
//! ```
//!
//! Ingest is idempotent: the keys come from the UIDs and the encoders are
//! deterministic, so ingesting an instance again rewrites the same bytes.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::dicom::{self, DEFAULT_EFFORT, ImageFormat, Metadata, RenderOptions};
use crate::dual::{PutResult, Storage};
use crate::error::{Error, Result};
use crate::key::Key;
use crate::store::object::PutOptions;

/// Thumbnail boxes, largest first.
pub const THUMBNAIL_SIZES: [u32; 2] = [256, 64];

/// Longest UID DICOM allows (PS3.5 9.1).
const MAX_UID_LEN: usize = 64;

/// How the WebP rendition and thumbnails are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestOptions {
    /// 1..=100, lossy WebP quality (default 90).
    pub quality: u8,
    /// Lossless WebP instead of lossy.
    pub lossless: bool,
    /// libwebp's `method`, 0..=6 (default 4), as [`RenderOptions::effort`].
    pub effort: u8,
}

impl Default for IngestOptions {
    fn default() -> Self {
        Self {
            quality: 90,
            lossless: false,
            effort: DEFAULT_EFFORT,
        }
    }
}

/// Where an instance's objects are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestKeys {
    pub original: Key,
    pub image: Key,
    /// `(box size, key)` in the order of [`THUMBNAIL_SIZES`].
    pub thumbnails: Vec<(u32, Key)>,
}

impl IngestKeys {
    /// The keys of an instance; its three UIDs must be valid (digits and
    /// dots, non-empty components, at most 64 characters) or the instance is
    /// `DicomInvalid`: they become path segments.
    pub fn for_metadata(metadata: &Metadata) -> Result<Self> {
        let study = uid("Study Instance UID", metadata.study_instance_uid.as_deref())?;
        let series = uid(
            "Series Instance UID",
            metadata.series_instance_uid.as_deref(),
        )?;
        let sop = uid("SOP Instance UID", metadata.sop_instance_uid.as_deref())?;
        Ok(Self {
            original: Key::parse(&format!("dicom/{study}/{series}/{sop}.dcm"))?,
            image: Key::parse(&format!("images/{study}/{series}/{sop}.webp"))?,
            thumbnails: THUMBNAIL_SIZES
                .iter()
                .map(|&size| Ok((size, Key::parse(&format!("thumbnails/{sop}_{size}.webp"))?)))
                .collect::<Result<_>>()?,
        })
    }
}

/// What an ingest stored.
#[derive(Debug)]
pub struct Ingested {
    pub keys: IngestKeys,
    pub metadata: Metadata,
    /// One per key: the original, the image, then the thumbnails.
    pub results: Vec<PutResult>,
}

/// A UID usable as a key segment: `[0-9]+(\.[0-9]+)*`, at most 64 characters.
/// Leading zeros in a component break PS3.5 but occur in real files and are
/// harmless in a key, so they are accepted.
pub fn uid<'a>(name: &str, value: Option<&'a str>) -> Result<&'a str> {
    let value = value.ok_or_else(|| Error::DicomInvalid(format!("{name} is missing")))?;
    let valid = value.len() <= MAX_UID_LEN
        && value
            .split('.')
            .all(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()));
    if !valid {
        let shown: String = value.chars().take(80).collect();
        return Err(Error::DicomInvalid(format!(
            "{name} {shown:?} is not a valid UID (digits and dots, at most {MAX_UID_LEN} characters)"
        )));
    }
    Ok(value)
}

/// Renders `dicom` once (on tokio's blocking pool, off the I/O threads), then
/// writes the renditions and, last, the original: once the `.dcm` exists,
/// everything derived from it does too. Nothing is written when the instance
/// cannot be rendered or its UIDs are invalid.
pub async fn ingest(storage: &Storage, dicom: Bytes, opts: IngestOptions) -> Result<Ingested> {
    let render_opts = RenderOptions {
        format: ImageFormat::Webp,
        quality: opts.quality,
        lossless: opts.lossless,
        effort: opts.effort,
        frame: 0,
        window: None,
        thumbnails: THUMBNAIL_SIZES.to_vec(),
    };
    let input = dicom.clone();
    let rendition = tokio::task::spawn_blocking(move || dicom::render(&input, &render_opts))
        .await
        .map_err(|e| Error::DicomInvalid(format!("rendering failed: {e}")))??;
    let keys = IngestKeys::for_metadata(&rendition.metadata)?;
    let put_opts = PutOptions {
        metadata: object_metadata(&rendition.metadata),
        ..PutOptions::default()
    };

    let mut derived = vec![(keys.image.clone(), Bytes::from(rendition.image))];
    for ((size, key), (rendered, bytes)) in keys.thumbnails.iter().zip(rendition.thumbnails) {
        debug_assert_eq!(*size, rendered);
        derived.push((key.clone(), Bytes::from(bytes)));
    }
    let writes = derived
        .iter()
        .map(|(key, bytes)| storage.put(key, bytes.clone(), put_opts.clone()));
    // Each write runs to its end even when another fails: one cut short would leave
    // its object on one side of a dual store until a repair.
    let derived = futures::future::join_all(writes)
        .await
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
    let original = storage.put(&keys.original, dicom, put_opts).await?;

    let mut results = vec![original];
    results.extend(derived);
    Ok(Ingested {
        keys,
        metadata: rendition.metadata,
        results,
    })
}

/// The UIDs travel with every object, so a rendition names its instance.
/// They are validated digits and dots: safe as metadata on every store.
fn object_metadata(metadata: &Metadata) -> BTreeMap<String, String> {
    [
        ("study_instance_uid", &metadata.study_instance_uid),
        ("series_instance_uid", &metadata.series_instance_uid),
        ("sop_instance_uid", &metadata.sop_instance_uid),
    ]
    .into_iter()
    .filter_map(|(name, value)| Some((name.to_owned(), value.clone()?)))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn shared(name: &str) -> Vec<u8> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/dicom");
        std::fs::read(std::path::Path::new(dir).join(name)).expect("shared DICOM file")
    }

    #[test]
    fn uids_must_be_digits_and_dots() {
        for good in ["1", "1.2.840.10008.1.2", "1.02.3", &"1".repeat(64)] {
            assert_eq!(uid("UID", Some(good)).unwrap(), good);
        }
        let long = "1".repeat(65);
        for bad in [
            "", ".", "..", "1..2", ".1", "1.", "1.2/3", "1.2 ", "a.b", "../x", &long,
        ] {
            let err = uid("UID", Some(bad)).unwrap_err();
            assert_eq!(err.code(), "DICOM_INVALID", "{bad:?}");
        }
        assert!(
            uid("UID", None)
                .unwrap_err()
                .to_string()
                .contains("missing")
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn ingest_writes_four_objects_idempotently() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            local: Some(dir.path().join("local").to_string_lossy().into_owned()),
            cloud: Some("memory://".into()),
            mode: Some("dual".into()),
            ..Config::default()
        };
        let storage = Storage::open(&config, None).unwrap();
        let bytes = Bytes::from(shared("CT_small.dcm"));
        let first = ingest(&storage, bytes.clone(), IngestOptions::default())
            .await
            .unwrap();
        let study = first.metadata.study_instance_uid.clone().unwrap();
        let sop = first.metadata.sop_instance_uid.clone().unwrap();
        assert!(
            first
                .keys
                .original
                .as_str()
                .starts_with(&format!("dicom/{study}/"))
        );
        assert_eq!(
            first.keys.thumbnails[1].1.as_str(),
            format!("thumbnails/{sop}_64.webp")
        );
        assert_eq!(first.results.len(), 4);
        assert_eq!(storage.get(&first.keys.original).await.unwrap(), bytes);

        let second = ingest(&storage, bytes, IngestOptions::default())
            .await
            .unwrap();
        assert_eq!(first.keys, second.keys);
        for (a, b) in first.results.iter().zip(&second.results) {
            assert_eq!(a.written.sha256, b.written.sha256, "{}", a.key.as_str());
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn ingest_of_a_non_dicom_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            local: Some(dir.path().to_string_lossy().into_owned()),
            mode: Some("local".into()),
            ..Config::default()
        };
        let storage = Storage::open(&config, None).unwrap();
        let err = ingest(
            &storage,
            Bytes::from_static(b"%PDF-1.7\n"),
            IngestOptions::default(),
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), "DICOM_INVALID");
        let page = storage.list("", None, 100).await.unwrap();
        assert!(page.objects.is_empty(), "{:?}", page.objects);
    }
}
