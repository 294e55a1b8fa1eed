//! (being written)

use crate::lang::Lang;
use crate::run::Run;

pub fn render(_run: &Run, _lang: Lang) -> Option<String> {
    None
}
