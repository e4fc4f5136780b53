//! Tests against the shared DICOM set: reference renderings, encodings,
//! metadata, and hostile input.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use image::{DynamicImage, GenericImageView};
use serde_json::Value;

use super::*;
use crate::error::Error;

fn shared_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/dicom"))
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(shared_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn manifest() -> Vec<Value> {
    let text = std::fs::read_to_string(shared_dir().join("manifest.json")).expect("manifest.json");
    let manifest: Value = serde_json::from_str(&text).expect("manifest is JSON");
    manifest["files"].as_array().expect("files array").clone()
}

fn entry(name: &str) -> Value {
    manifest()
        .into_iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in manifest"))
}

struct Diff {
    max: u8,
    mean: f64,
    over_4: f64,
}

fn compare(ours: &DynamicImage, reference: &DynamicImage) -> Result<Diff, String> {
    if ours.dimensions() != reference.dimensions() || ours.color() != reference.color() {
        return Err(format!(
            "got {:?} {:?}, reference {:?} {:?}",
            ours.dimensions(),
            ours.color(),
            reference.dimensions(),
            reference.color()
        ));
    }
    let (a, b) = (ours.as_bytes(), reference.as_bytes());
    let diffs: Vec<u8> = a.iter().zip(b).map(|(x, y)| x.abs_diff(*y)).collect();
    Ok(Diff {
        max: diffs.iter().copied().max().unwrap_or(0),
        mean: diffs.iter().map(|&d| f64::from(d)).sum::<f64>() / diffs.len() as f64,
        over_4: diffs.iter().filter(|&&d| d > 4).count() as f64 / diffs.len() as f64,
    })
}

#[test]
fn frame_0_matches_every_reference_rendering() {
    let files = manifest();
    assert_eq!(files.len(), 21);
    let mut failures = Vec::new();
    for file in &files {
        let name = file["name"].as_str().expect("name");
        let reference = &file["reference"];
        let lossy = reference["lossy_codec"].as_bool().expect("lossy_codec");
        let ybr = file["photometric_interpretation"]
            .as_str()
            .is_some_and(|p| p.starts_with("YBR"));
        let expected = image::open(shared_dir().join(reference["file"].as_str().expect("file")))
            .expect("reference PNG");
        let started = Instant::now();
        let outcome = render_frame(&read(name), 0, None)
            .map_err(|e| e.to_string())
            .and_then(|ours| compare(&ours, &expected));
        let elapsed = started.elapsed();
        match outcome {
            Ok(diff) => {
                let ok = if lossy {
                    diff.mean <= 1.0 && diff.over_4 < 0.01
                } else {
                    diff.max <= if ybr { 2 } else { 1 }
                };
                println!(
                    "{name:34} max {:3} mean {:.4} >4 {:.4}% {} {elapsed:.0?}",
                    diff.max,
                    diff.mean,
                    diff.over_4 * 100.0,
                    if ok { "ok" } else { "FAIL" }
                );
                if !ok {
                    failures.push(name.to_owned());
                }
            }
            Err(e) => {
                println!("{name:34} ERROR {e}");
                failures.push(name.to_owned());
            }
        }
    }
    assert!(failures.is_empty(), "failed: {failures:?}");
}

#[test]
fn every_frame_of_multi_frame_files_renders() {
    for name in [
        "emri_small_big_endian.dcm",
        "examples_ybr_color.dcm",
        "eCT_Supplemental.dcm",
    ] {
        let bytes = read(name);
        let frames = metadata(&bytes).expect("metadata").frames;
        assert!(frames > 1, "{name}");
        for frame in 0..frames {
            render_frame(&bytes, frame, None)
                .unwrap_or_else(|e| panic!("{name} frame {frame}: {e}"));
        }
        let err = render_frame(&bytes, frames, None).expect_err("frame past the end");
        assert!(
            matches!(&err, Error::InvalidConfig { field, .. } if field == "frame"),
            "{err}"
        );
    }
}

#[test]
fn render_encodes_each_format_with_fitting_thumbnails() {
    let bytes = read("US1_J2KR.dcm");
    for (format, lossless) in [
        (ImageFormat::Webp, false),
        (ImageFormat::Webp, true),
        (ImageFormat::Png, false),
        (ImageFormat::Jpeg, false),
    ] {
        let opts = RenderOptions {
            format,
            lossless,
            thumbnails: vec![256, 64, 1000],
            ..RenderOptions::default()
        };
        let out = render(&bytes, &opts).expect("render");
        let expected_format = match format {
            ImageFormat::Webp => image::ImageFormat::WebP,
            ImageFormat::Png => image::ImageFormat::Png,
            ImageFormat::Jpeg => image::ImageFormat::Jpeg,
        };
        assert_eq!(
            image::guess_format(&out.image).expect("known format"),
            expected_format
        );
        let main = image::load_from_memory(&out.image).expect("decodes");
        assert_eq!(
            (main.width(), main.height(), out.width, out.height),
            (640, 480, 640, 480)
        );
        assert_eq!(out.frames, 1);
        let sizes: Vec<(u32, (u32, u32))> = out
            .thumbnails
            .iter()
            .map(|(size, data)| {
                (
                    *size,
                    image::load_from_memory(data)
                        .expect("thumbnail decodes")
                        .dimensions(),
                )
            })
            .collect();
        // 640x480 keeps 4:3; 1000 does not upscale.
        assert_eq!(
            sizes,
            vec![(256, (256, 192)), (64, (64, 48)), (1000, (640, 480))]
        );
        assert_eq!(
            out.thumbnails[2].1, out.image,
            "a box the image fits in holds the image"
        );
    }
}

#[test]
fn lossless_webp_round_trips_exactly() {
    let bytes = read("CT_small.dcm");
    let opts = RenderOptions {
        lossless: true,
        ..RenderOptions::default()
    };
    let out = render(&bytes, &opts).expect("render");
    let decoded = image::load_from_memory(&out.image)
        .expect("decodes")
        .to_luma8();
    let direct = render_frame(&bytes, 0, None)
        .expect("render_frame")
        .to_luma8();
    assert_eq!(decoded, direct);
}

#[test]
fn window_override_replaces_the_files_voi() {
    let bytes = read("CT_small.dcm");
    let narrow = Window {
        center: 40.0,
        width: 80.0,
    };
    let windowed = render_frame(&bytes, 0, Some(&narrow))
        .expect("render")
        .to_luma8();
    let default = render_frame(&bytes, 0, None).expect("render").to_luma8();
    assert_ne!(windowed, default);
    // A 1-wide window thresholds at the center.
    let step = render_frame(
        &bytes,
        0,
        Some(&Window {
            center: 0.0,
            width: 1.0,
        }),
    )
    .expect("render")
    .to_luma8();
    assert!(step.pixels().all(|p| p.0[0] == 0 || p.0[0] == 255));
}

#[test]
fn metadata_matches_the_manifest() {
    for name in [
        "MR2_UNCR.dcm",
        "JPGExtended.dcm",
        "eCT_Supplemental.dcm",
        "gdcm-US-ALOKA-16.dcm",
        "emri_small_big_endian.dcm",
    ] {
        let expected = entry(name);
        let meta = metadata(&read(name)).expect("metadata");
        assert_eq!(
            meta.rows,
            expected["rows"].as_u64().map(|v| v as u32),
            "{name}"
        );
        assert_eq!(
            meta.columns,
            expected["columns"].as_u64().map(|v| v as u32),
            "{name}"
        );
        assert_eq!(
            u64::from(meta.frames),
            expected["number_of_frames"].as_u64().expect("frames"),
            "{name}"
        );
        assert_eq!(
            meta.photometric_interpretation.as_deref(),
            expected["photometric_interpretation"].as_str(),
            "{name}"
        );
        assert_eq!(
            meta.transfer_syntax_uid,
            expected["transfer_syntax_uid"].as_str().expect("ts"),
            "{name}"
        );
        // dicom-rs and pydicom spell "&" differently.
        let ts_name = meta
            .transfer_syntax_name
            .as_deref()
            .map(|n| n.replace('&', "and"));
        assert_eq!(
            ts_name.as_deref(),
            expected["transfer_syntax_name"].as_str(),
            "{name}"
        );
        assert_eq!(
            meta.modality.as_deref(),
            expected["modality"].as_str(),
            "{name}"
        );
        assert_eq!(
            meta.bits_stored.map(u64::from),
            expected["bits_stored"].as_u64(),
            "{name}"
        );
        for uid in [
            &meta.study_instance_uid,
            &meta.series_instance_uid,
            &meta.sop_instance_uid,
            &meta.sop_class_uid,
        ] {
            let uid = uid.as_deref().expect("UID present");
            assert!(
                uid.chars().all(|c| c.is_ascii_digit() || c == '.'),
                "{name}: {uid:?}"
            );
        }
        let json = serde_json::to_value(&meta).expect("serialises");
        assert!(json.get("studyInstanceUid").is_some() && json.get("transferSyntaxUid").is_some());
    }
    let mr = metadata(&read("MR2_UNCR.dcm")).expect("metadata");
    assert_eq!(
        (mr.window_center.clone(), mr.window_width.clone()),
        (vec![1000.0], vec![2000.0])
    );
    let ect = metadata(&read("eCT_Supplemental.dcm")).expect("metadata");
    assert_eq!(
        (ect.window_center.clone(), ect.window_width.clone()),
        (vec![49.0], vec![102.0])
    );
}

#[test]
fn render_carries_metadata_and_frame_count() {
    let bytes = read("examples_ybr_color.dcm");
    let opts = RenderOptions {
        format: ImageFormat::Png,
        frame: 29,
        ..RenderOptions::default()
    };
    let out = render(&bytes, &opts).expect("render");
    assert_eq!(out.frames, 30);
    assert_eq!(out.metadata, metadata(&bytes).expect("metadata"));
}

#[test]
fn options_are_validated_with_the_field_named() {
    let bytes = read("CT_small.dcm");
    let cases = [
        (
            RenderOptions {
                quality: 0,
                ..Default::default()
            },
            "quality",
        ),
        (
            RenderOptions {
                quality: 101,
                ..Default::default()
            },
            "quality",
        ),
        (
            RenderOptions {
                effort: 7,
                ..Default::default()
            },
            "effort",
        ),
        (
            RenderOptions {
                thumbnails: vec![0],
                ..Default::default()
            },
            "thumbnails",
        ),
        (
            RenderOptions {
                thumbnails: vec![4097],
                ..Default::default()
            },
            "thumbnails",
        ),
        (
            RenderOptions {
                frame: 1,
                ..Default::default()
            },
            "frame",
        ),
        (
            RenderOptions {
                window: Some(Window {
                    center: 0.0,
                    width: 0.0,
                }),
                ..Default::default()
            },
            "window",
        ),
        (
            RenderOptions {
                window: Some(Window {
                    center: f64::NAN,
                    width: 10.0,
                }),
                ..Default::default()
            },
            "window",
        ),
    ];
    for (opts, field) in cases {
        match render(&bytes, &opts) {
            Err(Error::InvalidConfig { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    for (quality, size) in [(1, 1), (100, 4096)] {
        let opts = RenderOptions {
            quality,
            thumbnails: vec![size],
            ..Default::default()
        };
        render(&bytes, &opts).expect("bounds are inclusive");
    }
}

fn assert_rejected(bytes: &[u8], what: &str) -> String {
    let started = Instant::now();
    let result = std::panic::catch_unwind(|| render_frame(bytes, 0, None));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{what}: took {:?}",
        started.elapsed()
    );
    match result {
        Ok(Err(Error::DicomInvalid(m) | Error::DicomUnsupported(m))) => m,
        Ok(Ok(_)) => panic!("{what}: accepted"),
        Ok(Err(other)) => panic!("{what}: wrong error {} ({other})", other.code()),
        Err(_) => panic!("{what}: panicked"),
    }
}

/// Offset of the first element with `tag` at the top level, found by its
/// little-endian tag bytes (good enough for the hand-picked files below).
fn find_tag(bytes: &[u8], group: u16, element: u16) -> usize {
    let mut needle = group.to_le_bytes().to_vec();
    needle.extend_from_slice(&element.to_le_bytes());
    bytes
        .windows(4)
        .position(|w| w == needle)
        .expect("tag present")
}

/// Sets Rows and Columns (US, explicit VR little endian) to `side`.
fn declare_size(bytes: &mut [u8], side: u16) {
    for (group, element) in [(0x0028, 0x0010), (0x0028, 0x0011)] {
        let at = find_tag(bytes, group, element) + 8;
        bytes[at..at + 2].copy_from_slice(&side.to_le_bytes());
    }
}

#[test]
fn hostile_inputs_are_rejected_with_a_reason() {
    let ct = read("CT_small.dcm");
    println!("empty: {}", assert_rejected(&[], "empty"));
    println!(
        "pdf: {}",
        assert_rejected(
            b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n",
            "pdf"
        )
    );
    println!(
        "preamble only: {}",
        assert_rejected(&ct[..132], "preamble only")
    );
    for cut in [200, 1000, ct.len() / 2, ct.len() - 1] {
        println!(
            "truncated at {cut}: {}",
            assert_rejected(&ct[..cut], "truncated")
        );
    }

    // Rows and Columns (US, explicit VR LE) declared as 60000.
    let mut huge = ct.clone();
    declare_size(&mut huge, 60000);
    let message = assert_rejected(&huge, "60000x60000");
    assert!(message.contains("60000"), "{message}");

    // Pixel Data claiming 4 GiB.
    let mut long = ct.clone();
    let at = find_tag(&long, 0x7FE0, 0x0010) + 8;
    long[at..at + 4].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    let message = assert_rejected(&long, "4 GiB Pixel Data");
    assert!(message.contains("declares"), "{message}");

    // Rows with a 3-byte value: the parser would read on a byte out of step.
    let mut odd = ct.clone();
    let at = find_tag(&odd, 0x0028, 0x0010) + 6;
    odd[at..at + 2].copy_from_slice(&3u16.to_le_bytes());
    let message = assert_rejected(&odd, "3-byte US");
    assert!(message.contains("not a multiple"), "{message}");

    // A 100x100 JPEG declared (in the data set and in its own header) as 4096x4096.
    let mut bomb = read("SC_rgb_jpeg_dcmtk.dcm");
    let sof = bomb
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("SOF0")
        + 5;
    bomb[sof..sof + 4].copy_from_slice(&[0x10, 0x00, 0x10, 0x00]);
    declare_size(&mut bomb, 4096);
    let message = assert_rejected(&bomb, "JPEG bomb");
    assert!(message.contains("decompression bomb"), "{message}");

    // No Pixel Data at all.
    let no_pixels = &ct[..find_tag(&ct, 0x7FE0, 0x0010)];
    let message = assert_rejected(no_pixels, "no pixel data");
    assert!(message.contains("Pixel Data"), "{message}");
    assert!(metadata(no_pixels).is_ok(), "metadata still reads");
}

/// An encapsulated file with its first pixel data fragment replaced by
/// `edit` of it (padded to an even length, its item length updated).
fn with_first_fragment(bytes: &[u8], edit: impl FnOnce(&[u8]) -> Vec<u8>) -> Vec<u8> {
    let item = |at: usize| {
        assert_eq!(
            bytes[at..at + 4],
            [0xFE, 0xFF, 0x00, 0xE0],
            "an item at {at}"
        );
        u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize
    };
    let offset_table = find_tag(bytes, 0x7FE0, 0x0010) + 12;
    let length_at = offset_table + 8 + item(offset_table) + 4;
    let start = length_at + 4;
    let end = start + item(length_at - 4);
    let mut fragment = edit(&bytes[start..end]);
    fragment.resize(fragment.len().next_multiple_of(2), 0);
    let length = (fragment.len() as u32).to_le_bytes();
    [&bytes[..length_at], &length, &fragment, &bytes[end..]].concat()
}

fn assert_renders_like(bytes: &[u8], original: &[u8]) {
    let rendered = render_frame(bytes, 0, None).expect("renders");
    let expected = render_frame(original, 0, None).expect("the original renders");
    assert_eq!(rendered.as_bytes(), expected.as_bytes());
}

#[test]
fn another_codecs_marker_inside_a_jpeg_ls_stream_is_data() {
    // A JPEG 2000 SOC + SIZ marker pair followed by zeros, in a comment segment
    // after SOI: such bytes may appear in any stream, in its comments or its
    // entropy-coded data, and once made a JPEG-LS frame read as a 0x0 JPEG 2000 one.
    let original = read("JLSL_16_15_1_1F.dcm");
    let mut comment = vec![0xFF, 0xFE, 0, 44, 0xFF, 0x4F, 0xFF, 0x51];
    comment.resize(46, 0);
    let bytes = with_first_fragment(&original, |stream| {
        assert_eq!(stream[..2], [0xFF, 0xD8], "SOI");
        [&stream[..2], &comment, &stream[2..]].concat()
    });
    assert_renders_like(&bytes, &original);
}

#[test]
fn a_jpeg_2000_codestream_in_a_jp2_file_renders_like_the_bare_codestream() {
    // Some encoders wrap the codestream in JP2 boxes, which DICOM does not ask for.
    let boxed = |kind: &[u8], payload: &[u8]| {
        let length = (8 + payload.len() as u32).to_be_bytes();
        [&length, kind, payload].concat()
    };
    // 64x64, 1 component, signed 16 bits (sign bit | bit depth - 1), JPEG 2000
    // compression, greyscale (enumerated colour space 17), as the codestream says.
    let ihdr = [0, 0, 0, 64, 0, 0, 0, 64, 0, 1, 0x80 | 15, 7, 0, 0];
    let colr = [1, 0, 0, 0, 0, 0, 17];
    let header = [boxed(b"ihdr", &ihdr), boxed(b"colr", &colr)].concat();
    let original = read("MR_small_jp2klossless.dcm");
    let bytes = with_first_fragment(&original, |codestream| {
        [
            boxed(b"jP  ", b"\r\n\x87\n"),
            boxed(b"ftyp", b"jp2 \0\0\0\0jp2 "),
            boxed(b"jp2h", &header),
            boxed(b"jp2c", codestream),
        ]
        .concat()
    });
    assert_renders_like(&bytes, &original);
}

#[test]
fn a_subsampled_jpeg_2000_component_is_refused_not_rendered_from_a_short_plane() {
    let original = read("MR_small_jp2klossless.dcm");
    for (dx, dy) in [(2, 2), (2, 1), (1, 2)] {
        // XRsiz and YRsiz of the only component, after SOC, SIZ's 38 bytes and Ssiz.
        let bytes = with_first_fragment(&original, |codestream| {
            let mut edited = codestream.to_vec();
            edited[43..45].copy_from_slice(&[dx, dy]);
            edited
        });
        let message = assert_rejected(&bytes, "subsampled");
        assert!(
            message.contains(&format!("(subsampled by {dx}x{dy}) in a 64x64 image")),
            "{message}"
        );
    }
}

#[test]
fn tiny_jpeg_2000_code_blocks_in_a_large_frame_are_refused_before_decoding() {
    // MR_small_jp2klossless made 4096x4096 (a 32 MiB frame) in its data set and
    // its SIZ (one 4096x4096 tile), with 4x4 code-blocks: a million blocks that
    // OpenJPEG would allocate for before decoding any. Padded past 1/64 of the
    // frame, so the compression ratio guard lets it through.
    let mut bytes = read("MR_small_jp2klossless.dcm");
    declare_size(&mut bytes, 4096);
    let bytes = with_first_fragment(&bytes, |codestream| {
        let mut edited = codestream.to_vec();
        for at in [8, 12, 24, 28] {
            edited[at..at + 4].copy_from_slice(&4096u32.to_be_bytes());
        }
        let cod = edited
            .windows(2)
            .position(|w| w == [0xFF, 0x52])
            .expect("COD");
        edited[cod + 10..cod + 12].copy_from_slice(&[0, 0]);
        edited.resize(600 << 10, 0);
        edited
    });
    let message = assert_rejected(&bytes, "4x4 code-blocks in a 32 MiB frame");
    assert!(
        message.contains("code-blocks of 16 samples") && message.contains("memory bomb"),
        "{message}"
    );
}

#[test]
fn a_jpeg_2000_codestream_must_have_the_data_sets_size() {
    // MR_small_jp2klossless is 64x64; the data set is made to say 32x32.
    let mut bytes = read("MR_small_jp2klossless.dcm");
    declare_size(&mut bytes, 32);
    let message = assert_rejected(&bytes, "64x64 codestream in a 32x32 data set");
    assert!(
        message.contains("JPEG 2000 codestream is 64x64 with 1 component(s)")
            && message.contains("says 32x32 with 1"),
        "{message}"
    );
}

#[test]
fn only_regular_files_are_read() {
    let ct = shared_dir().join("CT_small.dcm");
    assert_eq!(
        read_file(&ct).expect("a regular file"),
        read("CT_small.dcm")
    );
    for (path, kind) in [
        (shared_dir(), "a directory"),
        ("/dev/zero".into(), "a device"),
    ] {
        match read_file(&path) {
            Err(Error::DicomInvalid(m)) => assert!(m.contains(kind), "{m}"),
            other => panic!("{}: {other:?}", path.display()),
        }
    }
}

/// A sparse file claims a terabyte without using the disk: reserving its size
/// up front aborted the process.
#[test]
fn a_huge_file_is_refused_without_reading_it() {
    let dir = std::env::temp_dir().join(format!("stowage-huge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (not_dicom, dicom) = (dir.join("disk.img"), dir.join("huge.dcm"));
    let terabyte = 1 << 40;
    std::fs::File::create(&not_dicom)
        .and_then(|file| file.set_len(terabyte))
        .expect("sparse file");
    std::fs::write(&dicom, read("CT_small.dcm")).expect("copy");
    std::fs::OpenOptions::new()
        .append(true)
        .open(&dicom)
        .and_then(|file| file.set_len(terabyte))
        .expect("sparse tail");
    let not_dicom = read_file(&not_dicom);
    let dicom = read_file(&dicom);
    std::fs::remove_dir_all(&dir).expect("clean up");
    match not_dicom {
        Err(Error::DicomInvalid(m)) => assert!(m.contains("no 'DICM' marker"), "{m}"),
        other => panic!("not DICOM: {:?}", other.map(|b| b.len())),
    }
    match dicom {
        Err(Error::DicomUnsupported(m)) => assert!(m.contains("too large"), "{m}"),
        other => panic!("huge DICOM: {:?}", other.map(|b| b.len())),
    }
}

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, original: &[u8]) -> Vec<u8> {
    let mut bytes = original.to_vec();
    // Headers are where parsers go wrong; bias a third of the edits there.
    let header_end = bytes.len().min(2048);
    let position = |rng: &mut Rng, len: usize| {
        if rng.below(3) == 0 {
            rng.below(header_end.min(len))
        } else {
            rng.below(len)
        }
    };
    match rng.below(4) {
        0 => bytes.truncate(rng.below(bytes.len())),
        1 => {
            for _ in 0..1 + rng.below(8) {
                let at = position(rng, bytes.len());
                bytes[at] ^= 1 << rng.below(8);
            }
        }
        2 => {
            let at = position(rng, bytes.len());
            let value = [0x00, 0xFF, 0x7F, 0x80][rng.below(4)];
            let end = (at + 1 + rng.below(8)).min(bytes.len());
            bytes[at..end].fill(value);
        }
        _ => {
            let at = position(rng, bytes.len());
            let value = (rng.next() as u32).to_le_bytes();
            let end = (at + 4).min(bytes.len());
            bytes[at..end].copy_from_slice(&value[..end - at]);
        }
    }
    bytes
}

#[test]
fn mutated_files_never_panic() {
    // Small files keep each case fast in the dev profile; together they
    // cover every codec in the set.
    let names: Vec<String> = manifest()
        .into_iter()
        .filter(|e| e["size_bytes"].as_u64().is_some_and(|s| s < 300_000))
        .map(|e| e["name"].as_str().expect("name").to_owned())
        .collect();
    let originals: Vec<Vec<u8>> = names.iter().map(|n| read(n)).collect();
    let mut rng = Rng(0x005E_ED0F_D1C0);
    let (mut ok, mut rejected) = (0, 0);
    for case in 0..400 {
        let index = case % originals.len();
        let bytes = mutate(&mut rng, &originals[index]);
        let started = Instant::now();
        let outcome = std::panic::catch_unwind(|| {
            let opts = RenderOptions {
                format: ImageFormat::Png,
                thumbnails: vec![32],
                ..Default::default()
            };
            (
                render(&bytes, &opts).map(|_| ()),
                metadata(&bytes).map(|_| ()),
            )
        });
        let elapsed = started.elapsed();
        assert!(
            elapsed < Duration::from_secs(10),
            "case {case} ({}) took {elapsed:?}",
            names[index]
        );
        match outcome {
            Ok((render_result, _)) => match render_result {
                Ok(()) => ok += 1,
                Err(Error::DicomInvalid(_) | Error::DicomUnsupported(_)) => rejected += 1,
                Err(other) => panic!("case {case}: wrong error {} ({other})", other.code()),
            },
            Err(_) => panic!("case {case} ({}) panicked", names[index]),
        }
    }
    println!("mutations: {ok} rendered, {rejected} rejected");
}

#[test]
fn zero_padding_after_the_data_set_is_not_read_as_elements() {
    // Zero bytes after the last element used to parse as empty (0000,0000)
    // elements when they came in twelves and fail otherwise.
    for (name, deflated) in [
        ("CT_small.dcm", false),
        ("emri_small_big_endian.dcm", false),
        ("MR_small_RLE.dcm", false),
        ("image_dfl.dcm", true),
    ] {
        let original = read(name);
        let expected = render_frame(&original, 0, None).expect(name);
        for zeros in [2, 4, 8, 12, 14, 16, 24, 100, 1008, 1012] {
            let padded = zero_padded(&original, zeros, deflated);
            let what = format!("{name} + {zeros} zero bytes");
            let image = render_frame(&padded, 0, None).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(image.as_bytes(), expected.as_bytes(), "{what}");
            metadata(&padded).unwrap_or_else(|e| panic!("{what}: {e}"));
        }
    }
    // Anything else after the data set is still read as elements, and judged.
    let ct = read("CT_small.dcm");
    let garbage = [ct.as_slice(), &[0xFF; 16]].concat();
    println!(
        "trailing 0xFF: {}",
        assert_rejected(&garbage, "trailing 0xFF")
    );
}

/// `bytes` with `zeros` zero bytes after its data set: for the deflated transfer
/// syntax inside the deflate stream, where the parser meets them after inflating.
fn zero_padded(bytes: &[u8], zeros: usize, deflated: bool) -> Vec<u8> {
    if !deflated {
        return [bytes, &vec![0; zeros]].concat();
    }
    let group_length = u32::from_le_bytes(bytes[140..144].try_into().expect("4 bytes"));
    let meta_end = 144 + group_length as usize;
    let mut data_set = Vec::new();
    flate2::read::DeflateDecoder::new(&bytes[meta_end..])
        .read_to_end(&mut data_set)
        .expect("inflates");
    data_set.resize(data_set.len() + zeros, 0);
    let mut out = flate2::write::DeflateEncoder::new(
        bytes[..meta_end].to_vec(),
        flate2::Compression::default(),
    );
    out.write_all(&data_set).expect("deflates");
    out.finish().expect("deflates")
}
