//! Configuration problems reported all at once, each naming its field.

/// Every problem found in a configuration, for printing all at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<String>);

impl ConfigErrors {
    /// `Ok(())` when `problems` is empty, else the problems as an error.
    pub fn check(problems: Vec<String>) -> Result<(), ConfigErrors> {
        if problems.is_empty() { Ok(()) } else { Err(ConfigErrors(problems)) }
    }
}

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} problem(s) in the configuration:", self.0.len())?;
        for e in &self.0 {
            write!(f, "\n  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_every_problem() {
        let e = ConfigErrors::check(vec!["a is empty".into(), "b is 0".into()]).expect_err("two");
        assert_eq!(e.to_string(), "2 problem(s) in the configuration:\n  - a is empty\n  - b is 0");
        assert!(ConfigErrors::check(Vec::new()).is_ok());
    }
}
