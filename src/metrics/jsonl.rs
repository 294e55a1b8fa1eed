//! (being written)

use std::path::Path;

use super::MetricsBuilder;
use crate::error::{Error, Result};

pub fn read(path: &Path, _builder: &mut MetricsBuilder) -> Result<()> {
    Err(Error::input(path, "format reader not written yet"))
}
