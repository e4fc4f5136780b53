//! Enhanced multi-frame objects keep per-frame attributes in functional group
//! macros (PS3.3 C.7.6.16) instead of the top level of the data set.

use dicom_core::Tag;
use dicom_dictionary_std::tags;

use super::attributes::{Object, first_item, items};

/// The item of functional group `group` that applies to `frame`: the
/// per-frame item overrides the shared one.
pub(crate) fn group(obj: &Object, frame: u32, group: Tag) -> Option<&Object> {
    let per_frame = items(obj, tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE)
        .get(frame as usize)
        .and_then(|frame_item| first_item(frame_item, group));
    per_frame.or_else(|| {
        first_item(obj, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE)
            .and_then(|shared| first_item(shared, group))
    })
}

/// The object holding the attributes of `group` for `frame`: the functional
/// group item if there is one, else the top-level data set.
pub(crate) fn source(obj: &Object, frame: u32, group_tag: Tag) -> &Object {
    group(obj, frame, group_tag).unwrap_or(obj)
}
