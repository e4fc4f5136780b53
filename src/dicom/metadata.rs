use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::DefaultDicomObject;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use serde::Serialize;

use super::attributes::{floats, int, string, uint};
use super::functional_groups::source;

/// JSON-friendly summary of a DICOM object; `None` where the file lacks the
/// attribute. Window values are the ones that apply to frame 0 (from the
/// functional groups in enhanced multi-frame objects).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
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
    pub study_date: Option<String>,
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
    pub window_center: Vec<f64>,
    pub window_width: Vec<f64>,
}

impl Metadata {
    pub(crate) fn read(obj: &DefaultDicomObject) -> Self {
        let ts = obj
            .meta()
            .transfer_syntax()
            .trim_end_matches(['\0', ' '])
            .to_owned();
        let voi = source(obj, 0, tags::FRAME_VOILUT_SEQUENCE);
        let measures = source(obj, 0, tags::PIXEL_MEASURES_SEQUENCE);
        Self {
            patient_id: string(obj, tags::PATIENT_ID),
            patient_name: string(obj, tags::PATIENT_NAME),
            patient_birth_date: string(obj, tags::PATIENT_BIRTH_DATE),
            patient_sex: string(obj, tags::PATIENT_SEX),
            study_instance_uid: string(obj, tags::STUDY_INSTANCE_UID),
            series_instance_uid: string(obj, tags::SERIES_INSTANCE_UID),
            sop_instance_uid: string(obj, tags::SOP_INSTANCE_UID).or_else(|| {
                Some(
                    obj.meta()
                        .media_storage_sop_instance_uid()
                        .trim_end_matches('\0')
                        .to_owned(),
                )
            }),
            sop_class_uid: string(obj, tags::SOP_CLASS_UID).or_else(|| {
                Some(
                    obj.meta()
                        .media_storage_sop_class_uid()
                        .trim_end_matches('\0')
                        .to_owned(),
                )
            }),
            accession_number: string(obj, tags::ACCESSION_NUMBER),
            modality: string(obj, tags::MODALITY),
            study_date: string(obj, tags::STUDY_DATE),
            study_time: string(obj, tags::STUDY_TIME),
            study_description: string(obj, tags::STUDY_DESCRIPTION),
            series_description: string(obj, tags::SERIES_DESCRIPTION),
            series_number: int(obj, tags::SERIES_NUMBER),
            instance_number: int(obj, tags::INSTANCE_NUMBER),
            manufacturer: string(obj, tags::MANUFACTURER),
            rows: uint(obj, tags::ROWS),
            columns: uint(obj, tags::COLUMNS),
            frames: uint(obj, tags::NUMBER_OF_FRAMES)
                .filter(|&n| n > 0)
                .unwrap_or(1),
            bits_allocated: uint(obj, tags::BITS_ALLOCATED),
            bits_stored: uint(obj, tags::BITS_STORED),
            pixel_representation: uint(obj, tags::PIXEL_REPRESENTATION),
            samples_per_pixel: uint(obj, tags::SAMPLES_PER_PIXEL),
            photometric_interpretation: string(obj, tags::PHOTOMETRIC_INTERPRETATION),
            transfer_syntax_name: TransferSyntaxRegistry.get(&ts).map(|t| t.name().to_owned()),
            transfer_syntax_uid: ts,
            pixel_spacing: floats(measures, tags::PIXEL_SPACING)
                .or_else(|| floats(obj, tags::PIXEL_SPACING)),
            window_center: floats(voi, tags::WINDOW_CENTER).unwrap_or_default(),
            window_width: floats(voi, tags::WINDOW_WIDTH).unwrap_or_default(),
        }
    }
}
