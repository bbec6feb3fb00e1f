//! Kconfig fragments: merging them, and checking that Kconfig honoured them.
//!
//! A variant's configuration is `allnoconfig` plus a list of fragments from
//! `configs/`. Later fragments override earlier ones, symbol by symbol.
//! Kconfig silently drops a symbol whose dependencies are not met, so after
//! generating `.config` every requested value is checked.

use std::collections::BTreeMap;

use anyhow::{bail, Result};

/// One symbol's requested value: `y`, `m`, a number or string, or `None`
/// for `# CONFIG_FOO is not set`.
pub type Value = Option<String>;

/// Symbols in the order they were first requested.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Fragment {
    order: Vec<String>,
    values: BTreeMap<String, Value>,
}

impl Fragment {
    /// Parses a fragment, ignoring comments and blank lines.
    pub fn parse(text: &str) -> Result<Self> {
        let mut frag = Self::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if let Some(sym) = line
                .strip_prefix("# CONFIG_")
                .and_then(|rest| rest.strip_suffix(" is not set"))
            {
                frag.set(sym, None);
            } else if line.is_empty() || line.starts_with('#') {
                continue;
            } else if let Some((sym, value)) = line
                .strip_prefix("CONFIG_")
                .and_then(|rest| rest.split_once('='))
            {
                let value = (value != "n").then(|| value.to_string());
                frag.set(sym, value);
            } else {
                bail!("line {}: not a Kconfig assignment: {line}", n + 1);
            }
        }
        Ok(frag)
    }

    fn set(&mut self, sym: &str, value: Value) {
        if self.values.insert(sym.to_string(), value).is_none() {
            self.order.push(sym.to_string());
        }
    }

    /// Applies `other` on top of `self`: its values win.
    pub fn merge(&mut self, other: &Fragment) {
        for sym in &other.order {
            self.set(sym, other.values[sym].clone());
        }
    }

    pub fn get(&self, sym: &str) -> Option<&Value> {
        self.values.get(sym)
    }

    /// The merged fragment, as `KCONFIG_ALLCONFIG` input.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for sym in &self.order {
            match &self.values[sym] {
                Some(v) => out.push_str(&format!("CONFIG_{sym}={v}\n")),
                None => out.push_str(&format!("# CONFIG_{sym} is not set\n")),
            }
        }
        out
    }

    /// Lists each requested symbol that the generated `.config` lacks or
    /// sets differently, as `SYMBOL: wanted X, got Y`.
    pub fn mismatches(&self, dot_config: &Fragment) -> Vec<String> {
        let mut out = Vec::new();
        for sym in &self.order {
            let wanted = &self.values[sym];
            let got = dot_config.get(sym).cloned().flatten();
            if *wanted != got {
                let show = |v: &Value| v.clone().unwrap_or_else(|| "n".into());
                out.push(format!(
                    "CONFIG_{sym}: wanted {}, got {}",
                    show(wanted),
                    show(&got)
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_fragments_override_earlier_ones() {
        let mut merged = Fragment::parse("CONFIG_A=y\nCONFIG_B=y\n# comment\n\n").unwrap();
        merged.merge(&Fragment::parse("# CONFIG_A is not set\nCONFIG_C=m\n").unwrap());
        assert_eq!(
            merged.render(),
            "# CONFIG_A is not set\nCONFIG_B=y\nCONFIG_C=m\n"
        );
    }

    #[test]
    fn n_means_not_set() {
        let frag = Fragment::parse("CONFIG_A=n\nCONFIG_S=\"x y\"\nCONFIG_I=512").unwrap();
        assert_eq!(frag.get("A"), Some(&None));
        assert_eq!(frag.get("S"), Some(&Some("\"x y\"".into())));
        assert_eq!(frag.get("I"), Some(&Some("512".into())));
    }

    #[test]
    fn garbage_is_rejected() {
        let err = Fragment::parse("CONFIG_A=y\nA=y\n").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn mismatches_name_dropped_and_changed_symbols() {
        let wanted =
            Fragment::parse("CONFIG_A=y\nCONFIG_B=y\n# CONFIG_C is not set\nCONFIG_D=y").unwrap();
        let got = Fragment::parse("CONFIG_A=y\nCONFIG_B=m\nCONFIG_C=y\n").unwrap();
        assert_eq!(
            wanted.mismatches(&got),
            vec![
                "CONFIG_B: wanted y, got m",
                "CONFIG_C: wanted n, got y",
                "CONFIG_D: wanted y, got n",
            ]
        );
    }

    #[test]
    fn an_absent_symbol_satisfies_not_set() {
        let wanted = Fragment::parse("# CONFIG_C is not set").unwrap();
        assert!(wanted.mismatches(&Fragment::default()).is_empty());
    }
}
