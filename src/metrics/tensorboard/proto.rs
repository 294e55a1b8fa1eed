//! The protobuf messages of an event file, only the fields read, and which summary
//! values are scalars.

/// `tensorflow.DataType` codes of the tensors read as scalars.
pub(super) const DT_FLOAT: i32 = 1;
pub(super) const DT_DOUBLE: i32 = 2;
/// The plugin TensorBoard draws scalar charts with; other plugins' rank-0 float tensors
/// are not metrics.
pub(super) const SCALARS_PLUGIN: &str = "scalars";
/// The plugin of `add_hparams`/`log_hyperparams` session summaries.
pub(super) const HPARAMS_PLUGIN: &str = "hparams";
/// `SummaryMetadata.data_class`: unknown (TF1 and PyTorch leave it unset) or scalar.
pub(super) const DATA_CLASS_UNKNOWN: i32 = 0;
pub(super) const DATA_CLASS_SCALAR: i32 = 1;

/// `tensorflow.Event`, only the fields read; prost skips the rest (graphs, session logs,
/// wall time).
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct Event {
    #[prost(int64, tag = "2")]
    pub(super) step: i64,
    #[prost(message, optional, tag = "5")]
    pub(super) summary: Option<Summary>,
}

/// `tensorflow.Summary`.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct Summary {
    #[prost(message, repeated, tag = "1")]
    pub(super) value: Vec<SummaryValue>,
}

/// `tensorflow.Summary.Value`: a tag and one of several kinds of value (images, audio
/// and histograms are left undecoded).
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct SummaryValue {
    #[prost(string, tag = "1")]
    pub(super) tag: String,
    #[prost(float, optional, tag = "2")]
    pub(super) simple_value: Option<f32>,
    #[prost(message, optional, tag = "8")]
    pub(super) tensor: Option<TensorProto>,
    /// Written with a tag's first value only by most writers.
    #[prost(message, optional, tag = "9")]
    pub(super) metadata: Option<SummaryMetadata>,
}

/// `tensorflow.SummaryMetadata`.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct SummaryMetadata {
    #[prost(message, optional, tag = "1")]
    pub(super) plugin_data: Option<PluginData>,
    #[prost(int32, tag = "4")]
    pub(super) data_class: i32,
}

/// `tensorflow.SummaryMetadata.PluginData`.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct PluginData {
    #[prost(string, tag = "1")]
    pub(super) plugin_name: String,
}

/// `tensorflow.TensorProto`, numeric parts.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct TensorProto {
    #[prost(int32, tag = "1")]
    pub(super) dtype: i32,
    #[prost(message, optional, tag = "2")]
    pub(super) tensor_shape: Option<TensorShape>,
    #[prost(bytes = "vec", tag = "4")]
    pub(super) tensor_content: Vec<u8>,
    #[prost(float, repeated, tag = "5")]
    pub(super) float_val: Vec<f32>,
    #[prost(double, repeated, tag = "6")]
    pub(super) double_val: Vec<f64>,
}

/// `tensorflow.TensorShapeProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct TensorShape {
    #[prost(message, repeated, tag = "2")]
    pub(super) dim: Vec<TensorDim>,
}

/// `tensorflow.TensorShapeProto.Dim`.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct TensorDim {
    #[prost(int64, tag = "1")]
    pub(super) size: i64,
}

impl SummaryValue {
    /// The value when it is one number: `simple_value`, or a float or double tensor of one
    /// element (rank 0 as `tf.summary.scalar` writes it, or a shape of ones).
    pub(super) fn scalar(&self) -> Option<f64> {
        if let Some(v) = self.simple_value {
            return Some(f64::from(v));
        }
        let t = self.tensor.as_ref()?;
        let elements = t
            .tensor_shape
            .iter()
            .flat_map(|s| &s.dim)
            .try_fold(1i64, |n, d| n.checked_mul(d.size))?;
        if elements != 1 {
            return None;
        }
        match t.dtype {
            DT_FLOAT => t.float_val.first().map(|v| f64::from(*v)).or_else(|| {
                let bytes: [u8; 4] = t.tensor_content.as_slice().try_into().ok()?;
                Some(f64::from(f32::from_le_bytes(bytes)))
            }),
            DT_DOUBLE => t.double_val.first().copied().or_else(|| {
                let bytes: [u8; 8] = t.tensor_content.as_slice().try_into().ok()?;
                Some(f64::from_le_bytes(bytes))
            }),
            _ => None,
        }
    }

    pub(super) fn plugin(&self) -> Option<&str> {
        let data = self.metadata.as_ref()?.plugin_data.as_ref()?;
        Some(data.plugin_name.as_str())
    }

    /// False when the metadata (if any) puts the value in a plugin other than scalars.
    pub(super) fn may_be_scalar(&self) -> bool {
        let Some(meta) = &self.metadata else {
            return true;
        };
        let plugin = self.plugin().unwrap_or_default();
        (plugin.is_empty() || plugin == SCALARS_PLUGIN)
            && matches!(meta.data_class, DATA_CLASS_UNKNOWN | DATA_CLASS_SCALAR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Canonical;
    use crate::metrics::tensorboard::testing::*;
    use crate::metrics::testing::values;

    #[test]
    fn only_scalars_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let tensor = |dtype, dims: &[i64], float_val: Vec<f32>, content: Vec<u8>| TensorProto {
            dtype,
            tensor_shape: Some(TensorShape {
                dim: dims.iter().map(|&size| TensorDim { size }).collect(),
            }),
            tensor_content: content,
            float_val,
            double_val: Vec::new(),
        };
        let value = |tag: &str, t: TensorProto, metadata| SummaryValue {
            tag: tag.into(),
            tensor: Some(t),
            metadata,
            ..Default::default()
        };
        let mut records = Vec::new();
        for step in 0..3 {
            let first = step == 0;
            // a one-element float tensor of another plugin, its metadata only once
            let meta = if first { plugin("pr_curves") } else { None };
            records.push(event(
                step,
                value("pr", tensor(DT_FLOAT, &[], vec![0.5], vec![]), meta),
            ));
            // a histogram, its plugin named on a first value of two numbers, then one
            // number at a time
            let (dims, numbers, meta) = if first {
                (&[2][..], vec![0.1, 0.2], plugin("histograms"))
            } else {
                (&[1][..], vec![0.3], None)
            };
            records.push(event(
                step,
                value("weights", tensor(DT_FLOAT, dims, numbers, vec![]), meta),
            ));
            // an int tensor
            records.push(event(
                step,
                value("count", tensor(3, &[], vec![], vec![1, 0, 0, 0]), None),
            ));
            // a [1, 1] shaped float tensor with raw bytes is one number
            let meta = if first { plugin("scalars") } else { None };
            let bytes = (0.25f32 * (step + 1) as f32).to_le_bytes().to_vec();
            records.push(event(
                step,
                value("loss", tensor(DT_FLOAT, &[1, 1], vec![], bytes), meta),
            ));
        }
        let m = load(&write(dir.path(), EVENTS, &records));
        let names: Vec<&str> = m.series.iter().map(|s| s.original.as_str()).collect();
        assert_eq!(names, ["loss"]);
        assert_eq!(
            values(&m, Canonical::Loss),
            vec![(1, 0.25), (2, 0.5), (3, 0.75)]
        );
    }
}
