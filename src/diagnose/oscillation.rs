//! (being written)

use super::Diagnosis;
use crate::lang::Lang;
use crate::run::Run;

pub fn check(_run: &Run, _lang: Lang, _out: &mut Diagnosis) {}
