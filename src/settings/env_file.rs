//! The `.env` file: read without touching the process environment (so the
//! environment keeps precedence), in the dialect of dotenv and of the
//! Supabase CLI's `supabase status -o env`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::t;

/// The variables of a `.env` file, read without touching the process
/// environment (so the environment keeps precedence).
pub(super) struct EnvFile {
    pub(super) path: PathBuf,
    vars: HashMap<String, String>,
}

impl EnvFile {
    pub(super) fn read(explicit: Option<&Path>) -> Result<Self> {
        let (path, required) = match explicit {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(".env"), false),
        };
        let mut vars = HashMap::new();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => Some(godotenv_escapes(&text)),
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(Error::config(t!(
                    "config-error-reading",
                    file = path.display().to_string(),
                    reason = e.to_string()
                )));
            }
        };
        match text.map(|t| dotenvy::from_read_iter(std::io::Cursor::new(t))) {
            None => {}
            Some(iter) => {
                for item in iter {
                    let (k, v) = item.map_err(|e| {
                        Error::config(t!(
                            "config-error-reading",
                            file = path.display().to_string(),
                            reason = describe_dotenv(&e)
                        ))
                    })?;
                    vars.insert(k, v);
                }
            }
        }
        Ok(Self { path, vars })
    }

    pub(super) fn get(&self, name: &str) -> Option<String> {
        self.vars.get(name).filter(|v| !v.is_empty()).cloned()
    }
}

/// `supabase status -o env` quotes values as Go's godotenv does: in double
/// quotes, with `!`, `` ` `` and carriage returns escaped as well as `\\`,
/// `"`, `$` and newlines. dotenvy refuses those three escapes, so inside
/// double quotes they are turned back into their characters first; every
/// other byte is left for dotenvy to read.
fn godotenv_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut double = false;
    for line in text.split_inclusive('\n') {
        if !double && line.trim_start().starts_with('#') {
            out.push_str(line);
            continue;
        }
        let mut single = false;
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if double => match chars.peek() {
                    Some('!') | Some('`') => out.extend(chars.next()),
                    Some('r') => {
                        chars.next();
                        out.push('\r');
                    }
                    _ => {
                        out.push(c);
                        out.extend(chars.next());
                    }
                },
                '"' if !single => {
                    double = !double;
                    out.push(c);
                }
                '\'' if !double => {
                    single = !single;
                    out.push(c);
                }
                _ => out.push(c),
            }
        }
    }
    out
}

/// A dotenv error without the offending line's text (it may hold a secret).
fn describe_dotenv(e: &dotenvy::Error) -> String {
    match e {
        dotenvy::Error::LineParse(_, index) => {
            t!("config-env-line-unparsable", byte = index.to_string())
        }
        dotenvy::Error::Io(io) => io.to_string(),
        _ => t!("config-env-unreadable"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn godotenv_escapes_are_read_only_inside_double_quotes() {
        assert_eq!(godotenv_escapes(r#"A="x\!y\`z\$w""#), r#"A="x!y`z\$w""#);
        assert_eq!(godotenv_escapes(r"A='x\!y'"), r"A='x\!y'");
        assert_eq!(
            godotenv_escapes("# it's \"a\nB=\"c\\!\""),
            "# it's \"a\nB=\"c!\""
        );
    }
}
