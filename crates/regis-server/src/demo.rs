//! `regis serve --demo`: a register of the 118 chemical elements
//! (`fixtures/demo/element.tsv`, the project's own data, built in), defined
//! and loaded through the sequencer like any other register.

use regis_model::import::{Format, Importer, commands};
use regis_model::rsf::Policy;
use regis_model::{Cardinality, Datatype, Field, RegisterName, definition_commands};
use regis_store::{
    DirBackend, Registry, Request, Sequencer, SequencerConfig, load_schema, system_clock,
};

use crate::error::ServerError;

/// The demo register's name (and primary-key field).
pub const NAME: &str = "element";

/// Its data: one row per element, `element`, `name`, `atomic-number`.
pub const ELEMENT_TSV: &str = include_str!("../../../fixtures/demo/element.tsv");

/// Its custodian.
pub const CUSTODIAN: &str = "Regis demo (IUPAC element names and symbols)";

/// A record worth showing in the printed `curl` line.
pub const EXAMPLE_KEY: &str = "Fe";

/// Why the demo could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// Its temporary data directory could not be made.
    #[error("making the demo's temporary data directory: {0}")]
    Dir(std::io::Error),
    /// Defining or loading it failed.
    #[error("demo register: {0}")]
    Load(String),
    /// Creating or opening it failed.
    #[error(transparent)]
    Server(#[from] Box<ServerError>),
}

/// The data directory of one demo run when none is given: new, private
/// (mode 0700) and under a name no one can guess (mkdtemp: a random name,
/// created only if it does not exist), so that no other user can plant or
/// read it; removed with all it holds when dropped, which `regis serve`
/// does when it returns, Ctrl-C and SIGTERM included.
#[derive(Debug)]
pub struct DemoDir(tempfile::TempDir);

impl DemoDir {
    /// Makes one in the system's temporary directory (`$TMPDIR`).
    pub fn new() -> Result<DemoDir, DemoError> {
        let mut builder = tempfile::Builder::new();
        builder.prefix("regis-demo-");
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700));
        builder.tempdir().map(DemoDir).map_err(DemoError::Dir)
    }

    /// Where it is.
    pub fn path(&self) -> &std::path::Path {
        self.0.path()
    }
}

fn field(name: &str, datatype: &str, text: &str) -> Field {
    Field {
        name: name.to_owned(),
        datatype: Datatype::from_name(datatype),
        cardinality: Cardinality::One,
        register: None,
        text: Some(text.to_owned()),
        phase: None,
    }
}

/// The demo register's fields.
pub fn fields() -> Vec<Field> {
    vec![
        field(NAME, "string", "The element's symbol"),
        field("name", "string", "The element's English name"),
        field(
            "atomic-number",
            "integer",
            "The number of protons in its nucleus",
        ),
    ]
}

/// Creates and loads the demo register in `registry` unless it exists.
/// Returns whether it was created.
pub fn prepare<B: DirBackend>(registry: &Registry) -> Result<bool, DemoError> {
    let name = RegisterName::new(NAME).map_err(|e| DemoError::Load(e.to_string()))?;
    if registry.exists::<B>(&name) {
        return Ok(false);
    }
    let load = |e: &dyn std::fmt::Display| DemoError::Load(e.to_string());
    let register = registry
        .create::<B>(&name)
        .map_err(|e| Box::new(ServerError::from(e)))?;
    let now =
        system_clock()().ok_or_else(|| DemoError::Load("the clock is out of range".into()))?;
    let definition = definition_commands(
        &name,
        &fields(),
        "The chemical elements",
        Some(CUSTODIAN),
        now,
    )
    .map_err(|e| load(&e))?;
    let store = register.store.clone();
    let sequencer = Sequencer::spawn(
        NAME,
        register.store,
        register.writer,
        register.signers,
        SequencerConfig::default(),
        system_clock(),
    )
    .map_err(|e| load(&e))?;
    let handle = sequencer.handle();
    let result = handle
        .run(Request::Load {
            commands: definition,
            policy: Policy::APPEND,
        })
        .map_err(|e| load(&e))
        .and_then(|_| {
            let schema = load_schema(NAME, &store).map_err(|e| load(&e))?;
            let rows = Importer::new(ELEMENT_TSV.as_bytes(), Format::Tsv, &schema, now)
                .map_err(|e| load(&e))?;
            let commands = (1..)
                .zip(commands(rows))
                .map(|(line, command)| command.map(|command| (line, command)))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| load(&e))?;
            handle
                .run(Request::Load {
                    commands,
                    policy: Policy::APPEND,
                })
                .map_err(|e| load(&e))
        });
    drop(handle);
    sequencer.join();
    result.map(|_| true)
}
