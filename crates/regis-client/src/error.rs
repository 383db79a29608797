//! What failed, exactly: which URL, checkpoint, tile, entry or item.

use regis_merkle::TileVerifyError;
use regis_merkle::tile::{BundleError, TilePath};
use regis_model::{ItemError, ItemHash, LeafError};
use regis_note::{
    PolicyError, SignedCheckpointError, TlogProofError, TlogProofVerifyError, VerifyError,
};

use crate::http::FetchError;

/// Why a register could not be verified. Every variant but
/// [`Error::Fetch`] means the server served something the pinned key and
/// the log's own hashes do not vouch for.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The base URL is not `http(s)://host/registers/NAME`.
    #[error("{url:?} is not a register URL (http://host/registers/NAME)")]
    BaseUrl {
        /// The URL given.
        url: String,
    },
    /// The pinned key cannot name a system log (`<name>/system`) or is not
    /// an Ed25519 key.
    #[error("no system-log key can be derived from {key}")]
    SystemKey {
        /// The pinned key.
        key: String,
    },
    /// `B/register` is not the metadata document it should be.
    #[error("{url}: {reason}")]
    Metadata {
        /// Where it came from.
        url: String,
        /// Why.
        reason: String,
    },
    /// A fetch failed (network, status, size, time).
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The checkpoint served is not a signed checkpoint.
    #[error("the checkpoint at {url} is malformed: {error}")]
    CheckpointFormat {
        /// Where it came from.
        url: String,
        /// Why.
        error: SignedCheckpointError,
    },
    /// The checkpoint's origin or signature does not verify with the
    /// pinned key.
    #[error("the checkpoint at {url} does not verify with the pinned key: {error}")]
    CheckpointSignature {
        /// Where it came from.
        url: String,
        /// Why.
        error: VerifyError,
    },
    /// The checkpoint, signed by the log, lacks what the client's witness
    /// policy requires: a cosignature from one of its witnesses fails, has
    /// a time of zero or in the future, or those that verify do not make
    /// up the quorum (the error names who cosigned and what it needs).
    #[error("the checkpoint at {url} does not meet the witness policy: {error}")]
    Witnesses {
        /// Where it came from.
        url: String,
        /// Why.
        error: PolicyError,
    },
    /// A hash tile was missing, malformed or does not match the trusted
    /// root.
    #[error("hash tiles of the tree of size {size}: {error}")]
    Tiles {
        /// The tree the tiles were read for.
        size: u64,
        /// Which tile, and why.
        error: TileVerifyError<FetchError>,
    },
    /// An entry bundle is not a sequence of length-prefixed leaves.
    #[error("{tile}: {error}")]
    Bundle {
        /// The bundle.
        tile: TilePath,
        /// Why.
        error: BundleError,
    },
    /// An entry bundle holds a number of leaves other than its width.
    #[error("{tile} holds {got} entries, expected {expected}")]
    BundleWidth {
        /// The bundle.
        tile: TilePath,
        /// Entries in it.
        got: usize,
        /// Its width.
        expected: u16,
    },
    /// A leaf of an entry bundle does not hash to the verified level-0
    /// hash at its index.
    #[error("entry {number} in {tile} does not hash to the verified leaf hash of the log")]
    LeafHash {
        /// The bundle.
        tile: TilePath,
        /// The entry's number (leaf index + 1).
        number: u64,
    },
    /// Leaf bytes that are not an exact v1 leaf.
    #[error("entry {number}: the leaf is not a v1 entry: {error}")]
    Leaf {
        /// The entry's number by its position in the log.
        number: u64,
        /// Why.
        error: LeafError,
    },
    /// A leaf whose `entry-number` is not its position in the log.
    #[error("the leaf at position {number} says it is entry {claimed}")]
    EntryNumber {
        /// The entry's number by its position in the log.
        number: u64,
        /// The number in its leaf.
        claimed: u64,
    },
    /// The leaves fold to a root other than the checkpoint's.
    #[error("the entries replayed fold to a root other than checkpoint {size}'s")]
    ReplayRoot {
        /// The checkpoint's size.
        size: u64,
    },
    /// An item that is not an item.
    #[error("item {hash}: {error}")]
    ItemFormat {
        /// The hash asked for.
        hash: ItemHash,
        /// Why.
        error: ItemError,
    },
    /// The item served for a hash has another hash.
    #[error("the item served for {expected} hashes to {found}")]
    ItemHash {
        /// The hash asked for (from a verified leaf).
        expected: ItemHash,
        /// The served item's hash.
        found: ItemHash,
    },
    /// The tlog-proof of a record is malformed.
    #[error("the proof of record {key:?} is malformed: {error}")]
    ProofFormat {
        /// The record's key.
        key: String,
        /// Why.
        error: TlogProofError,
    },
    /// The tlog-proof carries no leaf bytes (`extra`).
    #[error("the proof of record {key:?} carries no leaf bytes")]
    ProofLeaf {
        /// The record's key.
        key: String,
    },
    /// The tlog-proof does not verify with the pinned key.
    #[error("the proof of record {key:?} does not verify: {error}")]
    Proof {
        /// The record's key.
        key: String,
        /// Why.
        error: TlogProofVerifyError,
    },
    /// The proved leaf is another key's entry.
    #[error("the proof for record {asked:?} proves an entry of {found:?}")]
    WrongKey {
        /// The key asked for.
        asked: String,
        /// The key in the proved leaf.
        found: String,
    },
    /// An RSF document served is not RSF.
    #[error("{url}: {error}")]
    Rsf {
        /// Its URL.
        url: String,
        /// Where and why.
        error: Box<regis_model::rsf::RsfError>,
    },
    /// An RSF delta is RSF, but not the delta asked for.
    #[error("{url}, line {line}: {reason}")]
    Delta {
        /// Its URL.
        url: String,
        /// The line.
        line: u64,
        /// What is wrong.
        reason: String,
    },
    /// An entry of an RSF delta does not hash to the verified leaf hash
    /// at its place in its log: it was rewritten.
    #[error("{log} entry {number} of {url} does not hash to the verified leaf hash of the log")]
    DeltaLeafHash {
        /// The delta's URL.
        url: String,
        /// The entry's log.
        log: regis_model::Log,
        /// The entry's number.
        number: u64,
    },
    /// Writing or reading back the replay's records on local disk failed
    /// (`replayed.rs`): not the server's doing.
    #[error("the replay's records on local disk: {0}")]
    Spill(std::io::Error),
    /// The server's `B/records` disagrees with the records replayed from
    /// the verified log.
    #[error("B/records, record {key:?}: {reason}")]
    Records {
        /// The record's key.
        key: String,
        /// How it disagrees.
        reason: String,
    },
    /// No entry of the log at a checkpoint has the key: every entry bundle
    /// of a static copy was read and checked (`static_copy.rs`).
    #[error(
        "none of the {size} entries of checkpoint {size} has the key {key:?}: every entry was read"
    )]
    NoRecord {
        /// The key asked for.
        key: String,
        /// The checkpoint's size.
        size: u64,
    },
    /// A partial tile, partial entry bundle or RSF tail of the checkpoint
    /// read is not there (404 or 403): a static copy publishes a newer
    /// checkpoint, then deletes what it supersedes. Reading the checkpoint
    /// again and starting over from it gets past this
    /// ([`Error::is_superseded`]).
    #[error("GET {url}: status {status}: gone since the checkpoint of size {size} was read")]
    Superseded {
        /// What was asked for.
        url: String,
        /// The answer's status.
        status: u16,
        /// The checkpoint it belongs to.
        size: u64,
    },
    /// `B/records` is not served here (404 or 403): a static copy lists no
    /// records, so they cannot be compared.
    #[error(
        "GET {url}: status {status}: no list of records here (a static copy has none) to compare"
    )]
    NoRecordList {
        /// The first page asked for.
        url: String,
        /// The answer's status.
        status: u16,
    },
    /// A newer checkpoint is smaller than an older one.
    #[error("checkpoint {new} is smaller than checkpoint {old}")]
    Shrunk {
        /// The old size.
        old: u64,
        /// The new size.
        new: u64,
    },
    /// Two checkpoints the pinned key signed are not of one log: the new
    /// tree's verified tiles give another root at the old size.
    #[error(
        "checkpoints {old} and {new} are inconsistent: the tree of size {new} has another root at size {old} (a fork)"
    )]
    Inconsistent {
        /// The old size.
        old: u64,
        /// The new size.
        new: u64,
    },
    /// A links bundle (`B/records/{key}/proof?links=1`) is malformed, or
    /// says of a link what the record's item does not hold.
    #[error("the links bundle of record {key:?}: {reason}")]
    LinkBundle {
        /// The record's key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A link's target record is served with a proof, but no verifier key
    /// of its register was given, pinned or in a trusted registry.
    #[error(
        "record {key:?} links to register {register}, whose verifier key was not given (pinned, or in a trusted registry)"
    )]
    LinkKey {
        /// The record's key.
        key: String,
        /// The linked register.
        register: String,
    },
    /// A link's target record does not verify against its register's key.
    #[error("record {key:?}, link {field}={value:?} to register {register}: {error}")]
    Link {
        /// The record's key.
        key: String,
        /// The link's field.
        field: String,
        /// The link's value.
        value: String,
        /// The linked register.
        register: String,
        /// Why its proof failed.
        error: Box<Error>,
    },
}

impl Error {
    /// Whether this is a partial object of a checkpoint gone from a
    /// static copy ([`Error::Superseded`], or a partial hash tile answered
    /// 404 or 403): the caller reads the checkpoint again, once, and
    /// starts over from it.
    pub fn is_superseded(&self) -> bool {
        match self {
            Error::Superseded { .. } => true,
            Error::Tiles {
                error: TileVerifyError::Fetch { tile, error },
                ..
            } => !tile.is_full() && error.is_missing(),
            _ => false,
        }
    }
}
