//! `dicom.render` and `dicom.metadata` (the `dicom` namespace) and
//! `StorageManager.ingestDicom`.
//!
//! Render and metadata are `AsyncTask`s: they run on libuv's thread pool,
//! reading a path included, never on the event loop. Ingest runs on the
//! addon's tokio runtime like every other storage call, with the render on
//! tokio's blocking pool.
//!
//! `opts.signal` cancels a render that has not finished. napi's own
//! `AsyncTask` cancellation is not used: it cannot see a signal that was
//! aborted before the call, and it rejects a queued task with
//! `code: 'Cancelled'`. Instead an `abort` listener sets a flag that the task
//! checks before its work and that the render checks as it goes (between its
//! stages, and while libwebp encodes), so every cancellation rejects with
//! `code: 'ABORTED'`, soon; the listener is removed when the task settles.

// napi-derive registers free functions only outside `cfg(test)`.
#![cfg_attr(test, allow(dead_code))]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use napi::bindgen_prelude::JsObjectValue;
use napi::bindgen_prelude::{
    AsyncTask, Buffer, Either3, FnArgs, Function, FunctionRef, Object, ObjectRef, PromiseRaw,
    Uint8Array, Unknown,
};
use napi::{Env, Task};
use napi_derive::napi;

use super::args::{self, Arg};
use super::error::{promise, to_js};
use super::manager::StorageManager;
use super::numbers::whole_u32;
use super::values::JsPutResult;
use crate::dicom::{
    self, DEFAULT_EFFORT, ImageFormat, MAX_EFFORT, MAX_THUMBNAIL, Metadata, RenderOptions,
    Rendition, Window,
};
use crate::error::{Error, Result};
use crate::ingest::{self, IngestOptions};

/// The input of a DICOM call as JS passes it.
type Input = Arg<Either3<Buffer, Uint8Array, String>>;

/// A DICOM file given as bytes or as a path; the path is read on a worker thread.
enum Source {
    Bytes(Bytes),
    Path(PathBuf),
    /// An input of the wrong type, reported when loaded: through the promise.
    Refused(Error),
}

impl Source {
    fn new(input: Input) -> Self {
        match input.config("input", "a Buffer, a Uint8Array or a path") {
            Ok(Either3::A(buffer)) => Source::Bytes(Bytes::from_owner(buffer)),
            Ok(Either3::B(array)) => Source::Bytes(Bytes::from_owner(array)),
            Ok(Either3::C(path)) if path.is_empty() => {
                Source::Refused(Error::config("input", "is an empty path"))
            }
            Ok(Either3::C(path)) => Source::Path(PathBuf::from(path)),
            Err(e) => Source::Refused(e),
        }
    }

    /// Blocking: for libuv's thread pool.
    fn load(&self) -> Result<Bytes> {
        match self {
            Source::Bytes(bytes) => Ok(bytes.clone()),
            Source::Path(path) => dicom::read_file(path).map(Bytes::from),
            Source::Refused(e) => Err(e.clone()),
        }
    }

    async fn load_async(self) -> Result<Bytes> {
        match self {
            Source::Bytes(bytes) => Ok(bytes),
            Source::Refused(e) => Err(e),
            Source::Path(path) => tokio::task::spawn_blocking(move || dicom::read_file(&path))
                .await
                .map_err(|e| Error::task_failed("reading the DICOM file", e))?
                .map(Bytes::from),
        }
    }
}

#[napi(object)]
#[derive(Clone, Copy)]
pub struct DicomWindow {
    /// Window center in modality units (after rescale).
    pub center: f64,
    /// Window width, > 0.
    pub width: f64,
}

#[napi(object, object_to_js = false)]
#[derive(Default)]
pub struct DicomRenderOptions<'env> {
    /// Output encoding (default `'webp'`).
    #[napi(ts_type = "'webp' | 'png' | 'jpeg'")]
    pub format: Option<String>,
    /// 1..100, lossy WebP and JPEG (default 90).
    pub quality: Option<f64>,
    /// Lossless WebP (PNG is always lossless; JPEG cannot be).
    pub lossless: Option<bool>,
    /// WebP only: 0 (fastest) to 6 (smallest), sharp's `effort` (default 4).
    pub effort: Option<f64>,
    /// Zero-based frame (default 0).
    pub frame: Option<f64>,
    /// Overrides the file's VOI LUT / window (grayscale only).
    pub window: Option<DicomWindow>,
    /// Sizes of the square boxes thumbnails must fit in, e.g. `[256, 64]` (default none).
    pub thumbnails: Option<Vec<f64>>,
    /// Rejects the render with `ABORTED` once aborted.
    #[napi(ts_type = "AbortSignal")]
    pub signal: Option<Object<'env>>,
}

#[napi(object, object_to_js = false)]
#[derive(Default)]
pub struct DicomIngestOptions {
    /// 1..100, quality of the lossy WebP rendition and thumbnails (default 90).
    pub quality: Option<f64>,
    /// Lossless WebP rendition and thumbnails.
    pub lossless: Option<bool>,
    /// 0 (fastest) to 6 (smallest), sharp's `effort` (default 4).
    pub effort: Option<f64>,
}

/// JSON-friendly attributes of a DICOM object; absent attributes are omitted.
#[napi(object)]
pub struct DicomMetadata {
    pub patient_id: Option<String>,
    pub patient_name: Option<String>,
    pub patient_birth_date: Option<String>,
    pub patient_sex: Option<String>,
    pub study_instance_uid: Option<String>,
    pub series_instance_uid: Option<String>,
    pub sop_instance_uid: Option<String>,
    pub sop_class_uid: Option<String>,
    pub accession_number: Option<String>,
    pub modality: Option<String>,
    /// `YYYYMMDD` as stored.
    pub study_date: Option<String>,
    /// `HHMMSS.FFFFFF` as stored.
    pub study_time: Option<String>,
    pub study_description: Option<String>,
    pub series_description: Option<String>,
    pub series_number: Option<i64>,
    pub instance_number: Option<i64>,
    pub manufacturer: Option<String>,
    pub rows: Option<u32>,
    pub columns: Option<u32>,
    /// Number of Frames, 1 when absent.
    pub frames: u32,
    pub bits_allocated: Option<u32>,
    pub bits_stored: Option<u32>,
    pub pixel_representation: Option<u32>,
    pub samples_per_pixel: Option<u32>,
    pub photometric_interpretation: Option<String>,
    pub transfer_syntax_uid: String,
    pub transfer_syntax_name: Option<String>,
    /// Row spacing, column spacing in mm.
    pub pixel_spacing: Option<Vec<f64>>,
    /// Window centers that apply to frame 0 (empty when the file has none).
    pub window_center: Vec<f64>,
    pub window_width: Vec<f64>,
}

impl From<Metadata> for DicomMetadata {
    fn from(m: Metadata) -> Self {
        DicomMetadata {
            patient_id: m.patient_id,
            patient_name: m.patient_name,
            patient_birth_date: m.patient_birth_date,
            patient_sex: m.patient_sex,
            study_instance_uid: m.study_instance_uid,
            series_instance_uid: m.series_instance_uid,
            sop_instance_uid: m.sop_instance_uid,
            sop_class_uid: m.sop_class_uid,
            accession_number: m.accession_number,
            modality: m.modality,
            study_date: m.study_date,
            study_time: m.study_time,
            study_description: m.study_description,
            series_description: m.series_description,
            series_number: m.series_number,
            instance_number: m.instance_number,
            manufacturer: m.manufacturer,
            rows: m.rows,
            columns: m.columns,
            frames: m.frames,
            bits_allocated: m.bits_allocated,
            bits_stored: m.bits_stored,
            pixel_representation: m.pixel_representation,
            samples_per_pixel: m.samples_per_pixel,
            photometric_interpretation: m.photometric_interpretation,
            transfer_syntax_uid: m.transfer_syntax_uid,
            transfer_syntax_name: m.transfer_syntax_name,
            pixel_spacing: m.pixel_spacing,
            window_center: m.window_center,
            window_width: m.window_width,
        }
    }
}

#[napi(object)]
pub struct DicomRendition {
    /// The chosen frame, encoded in `format`.
    pub image: Buffer,
    pub width: u32,
    pub height: u32,
    /// Frames in the file.
    pub frames: u32,
    /// Requested size → encoded thumbnail that fits in size×size.
    #[napi(ts_type = "Record<number, Buffer>")]
    pub thumbnails: HashMap<String, Buffer>,
    pub metadata: DicomMetadata,
}

impl From<Rendition> for DicomRendition {
    fn from(r: Rendition) -> Self {
        DicomRendition {
            image: r.image.into(),
            width: r.width,
            height: r.height,
            frames: r.frames,
            thumbnails: r
                .thumbnails
                .into_iter()
                .map(|(size, bytes)| (size.to_string(), bytes.into()))
                .collect(),
            metadata: r.metadata.into(),
        }
    }
}

#[napi(object)]
pub struct DicomIngestKeys {
    /// `dicom/{Study}/{Series}/{SOP}.dcm`
    pub original: String,
    /// `images/{Study}/{Series}/{SOP}.webp`
    pub image: String,
    /// Size → `thumbnails/{SOP}_{size}.webp`, for 256 and 64.
    #[napi(ts_type = "Record<number, string>")]
    pub thumbnails: HashMap<String, String>,
}

#[napi(object)]
pub struct DicomIngestResult {
    pub keys: DicomIngestKeys,
    pub metadata: DicomMetadata,
    /// Each write's outcome per side: the original, the image, then the thumbnails.
    #[napi(ts_type = "Array<PutResult>")]
    pub results: Vec<JsPutResult>,
}

impl From<ingest::Ingested> for DicomIngestResult {
    fn from(i: ingest::Ingested) -> Self {
        DicomIngestResult {
            keys: DicomIngestKeys {
                original: i.keys.original.to_string(),
                image: i.keys.image.to_string(),
                thumbnails: i
                    .keys
                    .thumbnails
                    .into_iter()
                    .map(|(size, key)| (size.to_string(), key.to_string()))
                    .collect(),
            },
            metadata: i.metadata.into(),
            results: i.results.into_iter().map(Into::into).collect(),
        }
    }
}

fn quality(value: Option<f64>) -> Result<u8> {
    value.map_or(Ok(90), |q| Ok(whole_u32("quality", q, 1, 100)? as u8))
}

fn effort(value: Option<f64>) -> Result<u8> {
    value.map_or(Ok(DEFAULT_EFFORT), |e| {
        Ok(whole_u32("effort", e, 0, MAX_EFFORT.into())? as u8)
    })
}

impl DicomRenderOptions<'_> {
    /// Everything but the signal, checked before any work is queued.
    fn to_core(&self) -> Result<RenderOptions> {
        let format = match self.format.as_deref() {
            None | Some("webp") => ImageFormat::Webp,
            Some("png") => ImageFormat::Png,
            Some("jpeg") => ImageFormat::Jpeg,
            Some(other) => {
                return Err(Error::config(
                    "format",
                    format!("must be 'webp', 'png' or 'jpeg', got {other:?}"),
                ));
            }
        };
        let lossless = self.lossless.unwrap_or(false);
        if lossless && format == ImageFormat::Jpeg {
            return Err(Error::config(
                "lossless",
                "JPEG output is always lossy; use 'png' or 'webp'",
            ));
        }
        if self.effort.is_some() && format != ImageFormat::Webp {
            return Err(Error::config(
                "effort",
                "is WebP's encoder setting; PNG and JPEG have none",
            ));
        }
        let opts = RenderOptions {
            format,
            quality: quality(self.quality)?,
            lossless,
            effort: effort(self.effort)?,
            frame: self
                .frame
                .map_or(Ok(0), |f| whole_u32("frame", f, 0, u32::MAX))?,
            window: self.window.map(|w| Window {
                center: w.center,
                width: w.width,
            }),
            thumbnails: self
                .thumbnails
                .iter()
                .flatten()
                .map(|&size| whole_u32("thumbnails", size, 1, MAX_THUMBNAIL))
                .collect::<Result<_>>()?,
        };
        opts.validate()?;
        Ok(opts)
    }
}

/// `EventTarget.addEventListener` / `removeEventListener` with (type, listener).
type EventListenerMethod<'env> =
    Function<'env, FnArgs<(&'static str, Function<'env, (), ()>)>, Unknown<'env>>;

/// An `abort` listener on the caller's `AbortSignal` that sets a flag the
/// worker thread reads. Removed from the signal when the task settles, so a
/// signal shared by many calls does not collect listeners.
struct Abort {
    flag: Arc<AtomicBool>,
    signal: ObjectRef<false>,
    listener: FunctionRef<(), ()>,
}

impl Abort {
    fn watch(env: &Env, signal: &Object) -> napi::Result<Self> {
        let flag = Arc::new(AtomicBool::new(
            signal.get_named_property::<bool>("aborted")?,
        ));
        let set = flag.clone();
        let listener = env.create_function_from_closure::<(), (), _>("onabort", move |_| {
            set.store(true, Ordering::Release);
            Ok(())
        })?;
        let add: EventListenerMethod = signal.get_named_property("addEventListener")?;
        add.apply(signal, FnArgs::from(("abort", listener)))?;
        Ok(Abort {
            flag,
            signal: signal.create_ref()?,
            listener: listener.create_ref()?,
        })
    }

    fn detach(self, env: &Env) -> napi::Result<()> {
        let signal = self.signal.get_value(env)?;
        let remove: EventListenerMethod = signal.get_named_property("removeEventListener")?;
        remove.apply(
            signal,
            FnArgs::from(("abort", self.listener.borrow_back(env)?)),
        )?;
        self.signal.unref(env)
    }
}

pub struct RenderTask {
    source: Source,
    /// Option errors are reported through the promise, like every other
    /// error; taken by `compute`, which runs once.
    opts: Option<Result<RenderOptions>>,
    abort: Option<Abort>,
    cancel: dicom::Cancel,
}

impl Task for RenderTask {
    /// The core's error is kept as is, so `resolve` can give it its `code`.
    type Output = Result<Rendition>;
    type JsValue = DicomRendition;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let opts = self.opts.take().expect("compute runs once");
        let render = || {
            let opts = opts?;
            self.cancel.check()?;
            let bytes = self.source.load()?;
            let rendition = dicom::render_cancellable(&bytes, &opts, &self.cancel)?;
            self.cancel.check()?;
            Ok(rendition)
        };
        Ok(render())
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<Self::JsValue> {
        output.map(Into::into).map_err(|e| to_js(&env, e))
    }

    fn finally(self, env: Env) -> napi::Result<()> {
        self.abort.map_or(Ok(()), |a| a.detach(&env))
    }
}

pub struct MetadataTask {
    source: Source,
}

impl Task for MetadataTask {
    type Output = Result<Metadata>;
    type JsValue = DicomMetadata;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        Ok(self.source.load().and_then(|bytes| dicom::metadata(&bytes)))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<Self::JsValue> {
        output.map(Into::into).map_err(|e| to_js(&env, e))
    }
}

/// Decodes one frame (default 0) and encodes it, plus any thumbnails, as WebP
/// (default, quality 90), PNG or JPEG. Rejects with `DICOM_INVALID`,
/// `DICOM_UNSUPPORTED`, `INVALID_CONFIG`, `NOT_FOUND` (missing path) or `ABORTED`.
#[napi(namespace = "dicom", ts_return_type = "Promise<DicomRendition>")]
pub fn render(
    env: &Env,
    #[napi(ts_arg_type = "Buffer | Uint8Array | string")] input: Input,
    #[napi(ts_arg_type = "DicomRenderOptions | undefined | null")] opts: Option<
        Arg<DicomRenderOptions>,
    >,
) -> napi::Result<AsyncTask<RenderTask>> {
    let watched = args::options(opts).and_then(|o| {
        let abort = o
            .signal
            .as_ref()
            .map(|signal| {
                Abort::watch(env, signal).map_err(|_| {
                    // `null` has no `aborted` to read: V8 left a TypeError pending.
                    // SAFETY: `env` is the environment of this call, on its thread.
                    unsafe { args::clear_pending_exception(env.raw()) };
                    Error::config("signal", "expected an AbortSignal")
                })
            })
            .transpose()?;
        Ok((o.to_core(), abort))
    });
    let (opts, abort) = watched.unwrap_or_else(|e| (Err(e), None));
    Ok(AsyncTask::new(RenderTask {
        source: Source::new(input),
        opts: Some(opts),
        cancel: (abort.as_ref()).map_or_else(dicom::Cancel::default, |a| {
            dicom::Cancel::new(a.flag.clone())
        }),
        abort,
    }))
}

/// Reads the attributes without decoding Pixel Data.
#[napi(namespace = "dicom", ts_return_type = "Promise<DicomMetadata>")]
pub fn metadata(
    #[napi(ts_arg_type = "Buffer | Uint8Array | string")] input: Input,
) -> AsyncTask<MetadataTask> {
    AsyncTask::new(MetadataTask {
        source: Source::new(input),
    })
}

#[napi]
impl StorageManager {
    /// Decodes a DICOM instance once and stores, through the current mode:
    /// `dicom/{Study}/{Series}/{SOP}.dcm`, `images/{Study}/{Series}/{SOP}.webp`,
    /// `thumbnails/{SOP}_256.webp` and `thumbnails/{SOP}_64.webp`. Idempotent.
    #[napi(ts_return_type = "Promise<DicomIngestResult>")]
    pub fn ingest_dicom<'env>(
        &self,
        env: &'env Env,
        #[napi(ts_arg_type = "Buffer | Uint8Array | string")] input: Input,
        #[napi(ts_arg_type = "DicomIngestOptions | undefined | null")] opts: Option<
            Arg<DicomIngestOptions>,
        >,
    ) -> napi::Result<PromiseRaw<'env, DicomIngestResult>> {
        let source = Source::new(input);
        let opts = args::options(opts).and_then(|o| {
            Ok(IngestOptions {
                quality: quality(o.quality)?,
                lossless: o.lossless.unwrap_or(false),
                effort: effort(o.effort)?,
            })
        });
        let storage = self.storage();
        promise(
            env,
            async move {
                let opts = opts?;
                let bytes = source.load_async().await?;
                ingest::ingest(&*storage?, bytes, opts).await
            },
            |_, ingested| Ok(ingested.into()),
        )
    }
}
