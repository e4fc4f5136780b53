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
