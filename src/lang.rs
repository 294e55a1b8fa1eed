//! The language of what people read (report, summaries, rationales). Every sentence is
//! written in both languages where it is made, with `say!`, so a translation cannot drift
//! from the numbers it quotes.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    #[default]
    En,
    Zh,
}

/// `say!(lang, "English {x}", "中文 {x}")`: formats only the chosen language.
macro_rules! say {
    ($lang:expr, $en:literal, $zh:literal $(,)?) => {
        match $lang {
            $crate::lang::Lang::En => format!($en),
            $crate::lang::Lang::Zh => format!($zh),
        }
    };
    ($lang:expr, $en:literal, $zh:literal, $($arg:tt)+) => {
        match $lang {
            $crate::lang::Lang::En => format!($en, $($arg)+),
            $crate::lang::Lang::Zh => format!($zh, $($arg)+),
        }
    };
}
pub(crate) use say;
