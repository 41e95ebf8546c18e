//! Checks of metric expositions: that every metric an example dashboard charts is one the
//! daemon serves, whatever the suffix the query uses (`_total`, `_bucket`, `_sum`, `_count`).

/// The metric names a text exposition declares (its `# TYPE` lines).
pub fn served(exposition: &str) -> Vec<&str> {
    exposition.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.split_whitespace().next()).collect()
}

/// Panics naming the first metric of `dashboard` (any text: JSON, YAML) that `keep` selects
/// and `exposition` does not serve; returns how many such references it checked.
pub fn assert_dashboard_served(dashboard: &str, exposition: &str, keep: impl Fn(&str) -> bool) -> usize {
    let served = served(exposition);
    let mut checked = 0;
    for name in dashboard.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|n| keep(n)) {
        let base = ["_total", "_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s));
        assert!(served.contains(&base.unwrap_or(name)), "{name} is charted but not served:\n{exposition}");
        checked += 1;
    }
    checked
}
