//! The protobuf messages of a `.wandb` file that are read, from the SDK's
//! `wandb/proto/wandb_internal.proto`: only the fields used; prost skips the rest. The
//! `record_type` oneof is declared as optional fields with the same numbers, which is the
//! same on the wire.

/// `Record`: one of history, config, run … (stats, the system metrics, are not read).
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct Record {
    #[prost(message, optional, tag = "2")]
    pub(super) history: Option<HistoryRecord>,
    #[prost(message, optional, tag = "5")]
    pub(super) config: Option<ConfigRecord>,
    #[prost(message, optional, tag = "17")]
    pub(super) run: Option<RunRecord>,
}

/// `HistoryRecord`: one `wandb.log` row.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct HistoryRecord {
    #[prost(message, repeated, tag = "1")]
    pub(super) item: Vec<Item>,
    #[prost(message, optional, tag = "2")]
    pub(super) step: Option<HistoryStep>,
}

/// `HistoryStep`.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct HistoryStep {
    #[prost(int64, tag = "1")]
    pub(super) num: i64,
}

/// `HistoryItem` and `ConfigItem`, which have the same fields: `key`, or `nested_key`
/// for a value inside a dict, and the value as JSON text.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct Item {
    #[prost(string, tag = "1")]
    pub(super) key: String,
    #[prost(string, repeated, tag = "2")]
    pub(super) nested_key: Vec<String>,
    #[prost(string, tag = "16")]
    pub(super) value_json: String,
}

impl Item {
    /// The key path: `key` alone, or the parts of `nested_key`.
    pub(super) fn path(&self) -> Vec<&str> {
        if self.nested_key.is_empty() {
            vec![self.key.as_str()]
        } else {
            self.nested_key.iter().map(String::as_str).collect()
        }
    }
}

/// `ConfigRecord`: `wandb.config` updates after `wandb.init`.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct ConfigRecord {
    #[prost(message, repeated, tag = "1")]
    pub(super) update: Vec<Item>,
    #[prost(message, repeated, tag = "2")]
    pub(super) remove: Vec<Item>,
}

/// `RunRecord`: the run's id and its config at `wandb.init`.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct RunRecord {
    #[prost(string, tag = "1")]
    pub(super) run_id: String,
    #[prost(message, optional, tag = "4")]
    pub(super) config: Option<ConfigRecord>,
}
