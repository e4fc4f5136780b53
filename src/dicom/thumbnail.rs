use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::DynamicImage;

use crate::error::{Error, Result};

/// The box size of `image` scaled to fit within `size`×`size`, keeping its
/// aspect ratio (each side at least 1 pixel); `None` when it already fits:
/// thumbnails never upscale, so such a thumbnail is the image itself.
fn fit(image: &DynamicImage, size: u32) -> Option<(u32, u32)> {
    let (width, height) = (image.width(), image.height());
    if width <= size && height <= size {
        return None;
    }
    let scale = f64::from(size) / f64::from(width.max(height));
    let side = |side: u32| ((f64::from(side) * scale).round() as u32).clamp(1, size);
    Some((side(width), side(height)))
}

/// Lanczos3, as `image`'s `resize_exact` does, but with SIMD convolution:
/// 1024² → 256² grayscale takes 0.7 ms instead of 9.7 ms.
fn scale(image: &DynamicImage, (width, height): (u32, u32)) -> Result<DynamicImage> {
    let mut scaled = DynamicImage::new(width, height, image.color());
    let lanczos3 = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
    Resizer::new()
        .resize(image, &mut scaled, &lanczos3)
        .map_err(|e| Error::DicomUnsupported(format!("cannot scale a thumbnail: {e}")))?;
    Ok(scaled)
}

/// Thumbnails for every requested box, in the order requested; `None` for a
/// box the image already fits in, whose thumbnail is the image itself (the
/// caller reuses the image's encoding rather than encoding it twice).
/// Each is scaled from the smallest already-made thumbnail that still covers
/// it, not from the full image: a 64 px thumbnail from the 256 px one costs a
/// sixteenth as much.
pub(crate) fn thumbnails(
    image: &DynamicImage,
    sizes: &[u32],
) -> Result<Vec<(u32, Option<DynamicImage>)>> {
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(sizes[i]));
    let mut made: Vec<Option<DynamicImage>> = vec![None; sizes.len()];
    // The last thumbnail made, the smallest so far: the next one's source.
    let mut smallest: Option<usize> = None;
    for &i in &order {
        let thumb = smallest.and_then(|j| made[j].as_ref());
        let source = thumb.unwrap_or(image);
        made[i] = match fit(source, sizes[i]) {
            Some(dimensions) => Some(scale(source, dimensions)?),
            // A repeated size: the same thumbnail again.
            None => thumb.cloned(),
        };
        if made[i].is_some() {
            smallest = Some(i);
        }
    }
    Ok(sizes.iter().copied().zip(made).collect())
}

#[cfg(test)]
mod tests {
    use image::imageops::FilterType as ImageFilter;
    use image::{GrayImage, Luma};

    use super::*;

    fn sample() -> DynamicImage {
        DynamicImage::ImageLuma8(GrayImage::from_fn(300, 200, |x, y| {
            Luma([((x / 10 * 37 + y / 10 * 11) % 256) as u8])
        }))
    }

    #[test]
    fn sizes_fit_keep_the_aspect_ratio_and_never_upscale() {
        let made = thumbnails(&sample(), &[64, 300, 128, 64, 1000]).expect("thumbnails");
        let dimensions: Vec<_> = made
            .iter()
            .map(|(size, t)| (*size, t.as_ref().map(|t| (t.width(), t.height()))))
            .collect();
        assert_eq!(
            dimensions,
            vec![
                (64, Some((64, 43))),
                (300, None),
                (128, Some((128, 85))),
                (64, Some((64, 43))),
                (1000, None),
            ]
        );
    }

    /// The two differ only where Lanczos rings at hard edges: fast_image_resize
    /// keeps 8 bits between its passes, `image` keeps floats.
    #[test]
    fn scaling_matches_image_crates_lanczos3() {
        let gray = sample();
        for image in [gray.clone(), DynamicImage::ImageRgb8(gray.to_rgb8())] {
            let ours = thumbnails(&image, &[100]).expect("thumbnails")[0]
                .1
                .clone()
                .expect("scaled");
            let theirs = image.resize_exact(100, 67, ImageFilter::Lanczos3);
            assert_eq!(ours.color(), image.color());
            let diffs: Vec<u8> = ours
                .as_bytes()
                .iter()
                .zip(theirs.as_bytes())
                .map(|(a, b)| a.abs_diff(*b))
                .collect();
            assert_eq!(diffs.len(), theirs.as_bytes().len());
            let mean = diffs.iter().map(|&d| f64::from(d)).sum::<f64>() / diffs.len() as f64;
            let close = diffs.iter().filter(|&&d| d <= 1).count() as f64 / diffs.len() as f64;
            assert!(
                mean < 0.5 && close > 0.98,
                "{:?}: mean {mean}, within 1: {close}",
                image.color()
            );
        }
    }
}
