//! A stream's request and response headers as filters see them, built from the host's own
//! headers only when a filter first reads or changes them.
//!
//! Building a view copies every header; many callbacks of many filters (and every callback of
//! a filter that only counts, times or logs) never look. The host marks a view unbuilt with
//! the number of entries the callback is told ([`HeaderView::unbuilt`]) and lends its headers
//! around each chain call ([`lend_headers`]); the first read or change in that call builds
//! the view from them. A stream the chain parks (a filter paused it) has its views built
//! first: a parked stream is reached from callbacks the host did not lend it for.

use std::cell::Cell;
use std::ptr::NonNull;

use crate::headers::HeaderMap;

/// Where unbuilt views come from while a chain call runs (see [`lend_headers`]).
pub trait HeaderSource {
    /// The filters' view of the request headers: pseudo-headers first, in step with the host's.
    fn request_view(&self) -> HeaderMap;
    /// Of the response headers (`:status` first); `None` before there is a response.
    fn response_view(&self) -> Option<HeaderMap>;
}

/// Which message a view shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadersOf {
    /// The request's headers.
    Request,
    /// The response's headers.
    Response,
}

/// A header map built on first use. Changes go through `DerefMut` (which builds the view) to
/// the [`HeaderMap`]; reads through `Deref`, after [`HeaderView::build`] (the hostcalls that
/// read build first); [`HeaderView::len`] and [`HeaderView::is_changed`] answer without
/// building.
#[derive(Debug, Default)]
pub struct HeaderView {
    map: HeaderMap,
    /// What to build, and the entry count it will have, until it is built.
    unbuilt: Option<(HeadersOf, usize)>,
}

impl HeaderView {
    /// A view of the host's `message` headers, built when first used; `len` is the number of
    /// entries it will have (the count `proxy_on_*_headers` is told).
    pub fn unbuilt(message: HeadersOf, len: usize) -> Self {
        Self { map: HeaderMap::default(), unbuilt: Some((message, len)) }
    }

    /// Entries, duplicates included, built or not.
    #[inline]
    pub fn len(&self) -> usize {
        self.unbuilt.map_or_else(|| self.map.len(), |(_, len)| len)
    }

    /// True when the view has no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a filter changed the view ([`HeaderMap::is_changed`]); an unbuilt view is
    /// unchanged.
    #[inline]
    pub fn is_changed(&self) -> bool {
        self.unbuilt.is_none() && self.map.is_changed()
    }

    /// Whether the view was built (by a filter's read or change, or whole from a map).
    pub fn is_built(&self) -> bool {
        self.unbuilt.is_none()
    }

    /// Builds the view now if it is not built, from the headers lent to this thread.
    #[inline]
    pub fn build(&mut self) -> &mut HeaderMap {
        if let Some((message, _)) = self.unbuilt.take() {
            self.map = lent_view(message);
        }
        &mut self.map
    }
}

impl From<HeaderMap> for HeaderView {
    /// A view that is this map.
    fn from(map: HeaderMap) -> Self {
        Self { map, unbuilt: None }
    }
}

impl std::ops::Deref for HeaderView {
    type Target = HeaderMap;
    /// The built view (empty before it is built: a reader must [`HeaderView::build`] first).
    #[inline]
    fn deref(&self) -> &HeaderMap {
        debug_assert!(self.unbuilt.is_none(), "a header view read before it was built");
        &self.map
    }
}

impl std::ops::DerefMut for HeaderView {
    #[inline]
    fn deref_mut(&mut self) -> &mut HeaderMap {
        self.build()
    }
}

thread_local! {
    /// The headers [`lend_headers`] lends to this thread's chain call, if one runs.
    static LENT: Cell<Option<NonNull<dyn HeaderSource + 'static>>> = const { Cell::new(None) };
}

/// Runs `f` (a chain call) with `source` as where this thread's unbuilt views come from.
pub fn lend_headers<R>(source: &dyn HeaderSource, f: impl FnOnce() -> R) -> R {
    /// Puts back what was lent before, when `f` returns or unwinds.
    struct Restore(Option<NonNull<dyn HeaderSource + 'static>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            LENT.with(|lent| lent.set(self.0));
        }
    }
    // SAFETY: only the lifetime is erased. The pointer is dereferenced (in `lent_view`) only on
    // this thread while it is lent, that is while `f` runs, and `source` is borrowed for all
    // of that; `Restore` takes it back before `source`'s borrow ends, on unwind too.
    let erased: NonNull<dyn HeaderSource + 'static> = unsafe { std::mem::transmute(NonNull::from(source)) };
    let _restore = Restore(LENT.with(|lent| lent.replace(Some(erased))));
    f()
}

/// The lent headers' view of `message`; an empty map when nothing is lent (a stream the host
/// abandoned, whose headers it no longer has).
fn lent_view(message: HeadersOf) -> HeaderMap {
    let empty = || {
        let mut map = HeaderMap::new();
        map.mark_unchanged();
        map
    };
    let Some(source) = LENT.with(Cell::get) else { return empty() };
    // SAFETY: see `lend_headers`: a lent pointer is valid for as long as it is lent.
    let source = unsafe { source.as_ref() };
    match message {
        HeadersOf::Request => source.request_view(),
        HeadersOf::Response => source.response_view().unwrap_or_else(empty),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;
    impl HeaderSource for Fixed {
        fn request_view(&self) -> HeaderMap {
            let mut map = HeaderMap::from_pairs([(":method", "GET"), ("x-a", "1")]);
            map.mark_unchanged();
            map
        }
        fn response_view(&self) -> Option<HeaderMap> {
            None
        }
    }

    #[test]
    fn an_unbuilt_view_counts_without_building_and_builds_from_the_lent_headers() {
        let mut view = HeaderView::unbuilt(HeadersOf::Request, 2);
        assert_eq!((view.len(), view.is_changed(), view.is_built()), (2, false, false));
        lend_headers(&Fixed, || {
            assert_eq!(view.build().get(b"x-a").map(|v| &v[..]), Some(&b"1"[..]));
            view.add(b"x-b", "2");
        });
        assert!(view.is_built() && view.is_changed());
        assert_eq!(view.len(), 3);
    }

    #[test]
    fn without_lent_headers_a_view_is_empty_and_the_lending_ends_with_its_call() {
        lend_headers(&Fixed, || ());
        let mut view = HeaderView::unbuilt(HeadersOf::Request, 2);
        assert!(view.build().is_empty());
        assert!(!view.is_changed());
        let mut response = HeaderView::unbuilt(HeadersOf::Response, 1);
        lend_headers(&Fixed, || assert_eq!(response.build().len(), 0, "no response yet"));
    }
}
