//! `list`: one page of keys from every side reads look at (the local side, the cloud,
//! the colder tiers), as reads find them. Mid-migration each side holds keys the other
//! lacks (files not migrated yet, objects written in cloud mode), tier moves take
//! objects out of the hot tier, and a read falls back to any of them, so a listing of
//! one side alone would hide objects that `get` serves.

use std::collections::HashSet;

use futures::future::join_all;

use super::{Location, Side, Storage, moves_past, no_side};
use crate::error::{Error, Result};
use crate::key::Key;
use crate::store::object::{ObjectInfo, Page};

/// One page of a listing, each object with where it is, described by the side reads
/// try first.
#[derive(Debug)]
pub struct Listing {
    pub objects: Vec<(Location, ObjectInfo)>,
    pub next: Option<String>,
}

impl Storage {
    /// Keys under `prefix` after `start_after`, in byte order, from every read side: a
    /// key on several is described by the first that reads try. A side that is down or
    /// missing its bucket is left out, as reads fall back past it (a cloud marked down
    /// is not asked); other errors are not masked.
    pub async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Listing> {
        let sides = self.read_sides();
        let results = join_all(sides.iter().map(|(side, store)| {
            self.through_gate(*side, prefix, store.list(prefix, start_after, limit))
        }))
        .await;
        let mut pages = Vec::new();
        let mut first_error = None;
        for ((side, store), result) in sides.iter().zip(results) {
            match result {
                Ok(mut page) => {
                    if !store.lists_headers() {
                        self.apply_cache_control(&mut page);
                    }
                    pages.push((*side, page));
                }
                Err(e) if moves_past(&e) => {
                    first_error.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        if pages.is_empty() {
            return Err(first_error.unwrap_or_else(no_side));
        }
        let outdated = self.outdated_listed(&pages).await?;
        let mut listing = merge(pages, limit, |side, key| {
            outdated.contains(&(side, key.to_owned()))
        });
        let queued = self
            .queued
            .sift(&mut listing.objects, |(_, o)| o.key.as_str())
            .await?;
        for key in queued {
            self.describe_queued(&mut listing, &Key::parse(&key)?)
                .await?;
        }
        Ok(listing)
    }

    /// The colder tiers' listed copies that reads skip (`Storage::outdated`), as
    /// `(side, key)`: one journal query per page of a colder tier.
    async fn outdated_listed(&self, pages: &[(Side, Page)]) -> Result<HashSet<(Side, String)>> {
        let mut outdated = HashSet::new();
        let Some(journal) = &self.journal else {
            return Ok(outdated);
        };
        for (side, page) in pages {
            let (Side::Warm | Side::Cold, Some(first), Some(last)) =
                (side, page.objects.first(), page.objects.last())
            else {
                continue;
            };
            let keys = journal
                .outdated_between(side.as_str(), first.key.as_str(), last.key.as_str())
                .await?;
            outdated.extend(keys.into_iter().map(|key| (*side, key)));
        }
        Ok(outdated)
    }

    /// A listing without headers gives the extension defaults, which the app's
    /// `cacheControl` overrides as its writes do.
    fn apply_cache_control(&self, page: &mut Page) {
        for object in &mut page.objects {
            if let Some(value) = self.cache_control_override(&object.key) {
                object.cache_control = value;
            }
        }
    }

    /// A listed key whose write waits for a repair is described as reads find it: from
    /// the side holding the write's bytes, not the stale side that listed it first.
    async fn describe_queued(&self, listing: &mut Listing, key: &Key) -> Result<()> {
        let at = listing
            .objects
            .iter()
            .position(|(_, o)| o.key == *key)
            .expect("the key was listed");
        // The old name of a queued rename has no current side: reads miss it, and so
        // does the listing (it rejected whole with NOT_FOUND).
        let found = match self.current_sides(key).await {
            Ok(sides) => {
                self.first_side(key, sides, |s| s.head(key), |_, _| {})
                    .await
            }
            Err(e) => Err(e),
        };
        match found {
            Ok((side, info)) => listing.objects[at] = (Location::On(side), info),
            Err(Error::NotFound { .. }) => drop(listing.objects.remove(at)),
            Err(e) => return Err(e),
        }
        Ok(())
    }
}

/// The first `limit` keys of `pages` (each in byte order, the preferred side first).
/// Every page holds its side's first keys after the same point, so a key a page left
/// out comes after that page's last, and so after the `limit` keys kept, since that
/// page alone had `limit` of them. An `outdated` copy counts for that reasoning but
/// describes its key only when no side holds another, and then the key is left out.
fn merge(pages: Vec<(Side, Page)>, limit: usize, outdated: impl Fn(Side, &str) -> bool) -> Listing {
    let more = pages.iter().any(|(_, page)| page.next.is_some());
    let mut listed: Vec<(bool, Side, ObjectInfo)> = pages
        .into_iter()
        .flat_map(|(side, page)| page.objects.into_iter().map(move |o| (side, o)))
        .map(|(side, o)| (outdated(side, o.key.as_str()), side, o))
        .collect();
    // A stable sort keeps the preferred side's entry first among equal keys, after
    // every current one.
    listed.sort_by(|(x, _, a), (y, _, b)| (a.key.as_str(), x).cmp(&(b.key.as_str(), y)));
    let mut objects: Vec<(bool, Location, ObjectInfo)> = Vec::with_capacity(listed.len());
    for (stale, side, info) in listed {
        match objects.last_mut() {
            Some((_, location, kept)) if kept.key == info.key => {
                if let Location::On(first) = *location
                    && same_object((first, kept), (side, &info))
                {
                    *location = Location::Both;
                }
            }
            _ => objects.push((stale, Location::On(side), info)),
        }
    }
    let more = more || objects.len() > limit;
    objects.truncate(limit);
    let next = more
        .then(|| objects.last().map(|(_, _, o)| o.key.to_string()))
        .flatten();
    let objects = objects
        .into_iter()
        .filter(|(stale, ..)| !stale)
        .map(|(_, location, info)| (location, info))
        .collect();
    Listing { objects, next }
}

/// The local side and the cloud list the key with the same size, and the same
/// SHA-256 where both listings carry one (cloud listings carry none).
fn same_object((a, first): (Side, &ObjectInfo), (b, second): (Side, &ObjectInfo)) -> bool {
    let sides = matches!(
        (a, b),
        (Side::Local, Side::Cloud) | (Side::Cloud, Side::Local)
    );
    let hashes = match (&first.sha256, &second.sha256) {
        (Some(x), Some(y)) => x == y,
        _ => true,
    };
    sides && first.size == second.size && hashes
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    fn page(keys: &[&str], next: bool) -> Page {
        let objects = keys
            .iter()
            .map(|k| ObjectInfo {
                key: Key::parse(k).unwrap(),
                size: 0,
                last_modified: SystemTime::UNIX_EPOCH,
                etag: None,
                content_type: String::new(),
                cache_control: String::new(),
                sha256: None,
                metadata: Default::default(),
            })
            .collect();
        Page {
            objects,
            next: next.then(|| keys.last().unwrap().to_string()),
        }
    }

    fn keys(listing: &Listing) -> Vec<String> {
        listing
            .objects
            .iter()
            .map(|(location, o)| format!("{}:{}", location.as_str(), o.key.as_str()))
            .collect()
    }

    #[test]
    fn merges_in_byte_order_preferring_the_first_side() {
        let listing = merge(
            vec![
                (Side::Cloud, page(&["a", "c", "d"], false)),
                (Side::Local, page(&["b", "c", "e"], false)),
            ],
            10,
            |_, _| false,
        );
        assert_eq!(
            keys(&listing),
            ["cloud:a", "local:b", "both:c", "cloud:d", "local:e"]
        );
        assert_eq!(listing.next, None);
    }

    #[test]
    fn both_only_for_the_local_side_and_the_cloud_listing_the_same_size() {
        let mut local = page(&["a", "b"], false);
        local.objects[1].size = 1;
        let listing = merge(
            vec![
                (Side::Cloud, page(&["a", "b"], false)),
                (Side::Local, local),
                (Side::Warm, page(&["a", "b"], false)),
            ],
            10,
            |_, _| false,
        );
        assert_eq!(keys(&listing), ["both:a", "cloud:b"]);
        let tiers = merge(
            vec![
                (Side::Cloud, page(&["a"], false)),
                (Side::Warm, page(&["a"], false)),
            ],
            10,
            |_, _| false,
        );
        assert_eq!(keys(&tiers), ["cloud:a"]);
    }

    #[test]
    fn a_full_page_stops_where_no_side_can_have_skipped_a_key() {
        // Each side listed its first 3 keys; the local side has more after "c".
        let listing = merge(
            vec![
                (Side::Cloud, page(&["a", "b", "d"], false)),
                (Side::Local, page(&["a", "c", "e"], true)),
            ],
            3,
            |_, _| false,
        );
        assert_eq!(keys(&listing), ["both:a", "cloud:b", "local:c"]);
        assert_eq!(listing.next.as_deref(), Some("c"));
        let last = merge(vec![(Side::Local, page(&["x"], false))], 1, |_, _| false);
        assert_eq!(last.next, None);
    }

    #[test]
    fn an_outdated_copy_gives_way_to_a_current_one_and_else_leaves_its_key_out() {
        let listing = merge(
            vec![
                (Side::Cloud, page(&["b"], false)),
                (Side::Warm, page(&["a", "b", "c"], true)),
                (Side::Cold, page(&["c"], false)),
            ],
            3,
            |side, key| side == Side::Warm && key != "b",
        );
        assert_eq!(keys(&listing), ["cloud:b", "cold:c"]);
        // The cursor passes the key left out, so the next page does not start over.
        assert_eq!(listing.next.as_deref(), Some("c"));
    }
}
