//! Declared names: the shared form the policy and its decision records
//! hold them in, and similarity for "did you mean" suggestions.

/// A declared name (class, reason, model, strategy, queue) as engine
/// states and decision records hold it. Shared: a case's records repeat
/// the same few names (every decision snapshots the state), and a copy is
/// then a reference count, not an allocation. Each name is made on the
/// thread that replays the case, never taken from the policy: a count
/// shared by two threads would move its cache line between cores on
/// every copy.
pub type Name = std::sync::Arc<str>;

/// Levenshtein distance between two short strings.
pub fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidate closest to `name`, if it is close enough to be a typo
/// (at most a third of the name's length, and at least one edit allowed).
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (distance(&name.to_lowercase(), &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, c)| (*d, *c))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_counts_edits() {
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("same", "same"), 0);
    }

    #[test]
    fn closest_finds_typos_only() {
        let c = ["timeout", "rate_limited", "server_error"];
        assert_eq!(closest("timout", c), Some("timeout"));
        assert_eq!(closest("banana", c), None);
    }
}
