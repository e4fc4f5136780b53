use image::DynamicImage;
use image::imageops::FilterType;

/// Scales `image` to fit within `size`×`size`, keeping its aspect ratio
/// (each side at least 1 pixel). An image that already fits is returned at
/// its original size: thumbnails never upscale.
pub(crate) fn thumbnail(image: &DynamicImage, size: u32) -> DynamicImage {
    let (width, height) = (image.width(), image.height());
    if width <= size && height <= size {
        return image.clone();
    }
    let scale = f64::from(size) / f64::from(width.max(height));
    let fit = |side: u32| ((f64::from(side) * scale).round() as u32).clamp(1, size);
    image.resize_exact(fit(width), fit(height), FilterType::Lanczos3)
}

/// Thumbnails for every requested box, in the order requested. Each is scaled from
/// the smallest already-made thumbnail that still covers it, not from the full image:
/// a 64 px thumbnail from the 256 px one costs a sixteenth as much.
pub(crate) fn thumbnails(image: &DynamicImage, sizes: &[u32]) -> Vec<(u32, DynamicImage)> {
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(sizes[i]));
    let mut made: Vec<Option<DynamicImage>> = vec![None; sizes.len()];
    // The last thumbnail that shrank the image (a small copy), the next one's source.
    let mut smaller: Option<DynamicImage> = None;
    for &i in &order {
        let thumb = thumbnail(smaller.as_ref().unwrap_or(image), sizes[i]);
        if thumb.width() < image.width() || thumb.height() < image.height() {
            smaller = Some(thumb.clone());
        }
        made[i] = Some(thumb);
    }
    sizes
        .iter()
        .copied()
        .zip(made.into_iter().map(|t| t.expect("every size made")))
        .collect()
}
