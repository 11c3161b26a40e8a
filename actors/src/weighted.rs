//! Smooth weighted round robin (nginx's algorithm) for upstreams and aggregate members.

use parking_lot::Mutex;

/// Picks among weighted items so that over any window each item is chosen in proportion to its
/// weight, interleaved rather than in bursts. Items with weight ≤ 0 are never picked.
#[derive(Debug)]
pub struct SmoothWeighted<T> {
    items: Vec<(T, i64)>,
    current: Mutex<Vec<i64>>,
}

impl<T> SmoothWeighted<T> {
    /// Builds a picker, dropping items whose weight is not positive.
    pub fn new(items: impl IntoIterator<Item = (T, i64)>) -> Self {
        let items: Vec<(T, i64)> = items.into_iter().filter(|(_, w)| *w > 0).collect();
        let current = Mutex::new(vec![0; items.len()]);
        Self { items, current }
    }

    /// Number of pickable items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when nothing can be picked.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// All pickable items, in insertion order.
    pub fn items(&self) -> impl Iterator<Item = &T> {
        self.items.iter().map(|(item, _)| item)
    }

    /// The next item, or `None` when there is none.
    pub fn pick(&self) -> Option<&T> {
        self.pick_where(|_| true)
    }

    /// The next item among those `usable` accepts; unusable items neither win nor accumulate.
    pub fn pick_where(&self, usable: impl Fn(&T) -> bool) -> Option<&T> {
        match self.items.len() {
            0 => return None,
            1 => {
                return self
                    .items
                    .first()
                    .filter(|(i, _)| usable(i))
                    .map(|(i, _)| i)
            }
            _ => {}
        }
        let mut current = self.current.lock();
        let mut total = 0;
        let mut best: Option<usize> = None;
        for (idx, (item, weight)) in self.items.iter().enumerate() {
            if !usable(item) {
                continue;
            }
            current[idx] += weight;
            total += weight;
            if best.is_none_or(|b| current[idx] > current[b]) {
                best = Some(idx);
            }
        }
        let idx = best?;
        current[idx] -= total;
        self.items.get(idx).map(|(item, _)| item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_weights_smoothly() {
        let picker = SmoothWeighted::new([("a", 5), ("b", 1), ("c", 1)]);
        let picks: Vec<&str> = (0..7).map(|_| *picker.pick().unwrap()).collect();
        assert_eq!(picks, vec!["a", "a", "b", "a", "c", "a", "a"]);
    }

    #[test]
    fn zero_weights_are_never_picked() {
        let picker = SmoothWeighted::new([("a", 0), ("b", 2)]);
        assert_eq!(picker.len(), 1);
        for _ in 0..5 {
            assert_eq!(*picker.pick().unwrap(), "b");
        }
        let none: SmoothWeighted<&str> = SmoothWeighted::new([("a", 0)]);
        assert!(none.pick().is_none());
    }

    #[test]
    fn skips_unusable_items() {
        let picker = SmoothWeighted::new([("a", 1), ("b", 1)]);
        for _ in 0..4 {
            assert_eq!(*picker.pick_where(|i| *i != "a").unwrap(), "b");
        }
        assert!(picker.pick_where(|_| false).is_none());
    }
}
