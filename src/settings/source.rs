//! Where a setting's value came from ([`Source`]), and a value with its
//! origin ([`Setting`]).

use std::fmt;
use std::path::PathBuf;

use crate::i18n::Lang;
use crate::t_in;

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flag,
    Environment,
    EnvFile(PathBuf),
    /// An env file, under the Supabase CLI's name for the setting.
    EnvFileAs(PathBuf, &'static str),
    SavedSession(PathBuf),
    /// The running local stack: its state file and/or port variables.
    LocalStack(Vec<String>),
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe(crate::i18n::current()))
    }
}

impl Source {
    /// Where the value came from, in `lang` (`mailsync config --json`
    /// writes it in English whatever the run's language).
    pub fn describe(&self, lang: Lang) -> String {
        match self {
            Source::Flag => t_in!(lang, "source-flag"),
            Source::Environment => t_in!(lang, "source-environment"),
            Source::EnvFile(p) => t_in!(lang, "source-env-file", file = p.display().to_string()),
            Source::EnvFileAs(p, name) => t_in!(
                lang,
                "source-env-file-as",
                file = p.display().to_string(),
                name = *name
            ),
            Source::SavedSession(p) => {
                t_in!(lang, "source-saved-session", file = p.display().to_string())
            }
            Source::LocalStack(origin) => {
                t_in!(lang, "source-local-stack", origin = origin.join(", "))
            }
            Source::Default => t_in!(lang, "source-default"),
        }
    }
}

/// A resolved value and its origin.
#[derive(Debug, Clone)]
pub struct Setting<T> {
    pub value: T,
    pub source: Source,
}

impl<T: Clone> Setting<T> {
    /// The value and its source, apart.
    pub fn pair(&self) -> (T, Source) {
        (self.value.clone(), self.source.clone())
    }
}
