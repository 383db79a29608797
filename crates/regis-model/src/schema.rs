//! The register definition the system log carries, and item validation.
//!
//! System entries use five kinds of key (see [`SystemKey`]); their items
//! look like this in the published dumps:
//!
//! - `name`: `{"name":"country"}`, the register's identifier (its
//!   primary-key field has the same name);
//! - `register-name`: `{"register-name":"Country register"}`, its title;
//! - `custodian`: `{"custodian":"David de Silva"}`;
//! - `field:<f>`: `{"cardinality":"1","datatype":"string","field":"country","phase":"beta","register":"country","text":"…"}`;
//! - `register:<r>`: `{"fields":["country","name",…],"phase":"beta","register":"country","registry":"…","text":"…"}`.
//!
//! A [`Schema`] folds these entries, latest wins, and validates user items:
//! only the register's fields, each of its datatype and cardinality, and
//! the primary-key field present and equal to the entry's key.

use std::collections::BTreeMap;

use crate::datatype::Datatype;
use crate::item::{Item, Value, excerpt};

/// The key of a system entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SystemKey {
    /// `name`: the register's identifier.
    Name,
    /// `register-name`: its human title.
    RegisterName,
    /// `custodian`: who keeps it.
    Custodian,
    /// `field:<name>`: a field definition.
    Field(String),
    /// `register:<name>`: a register definition (its own, in practice).
    Register(String),
}

impl SystemKey {
    /// Reads a system entry's key.
    pub fn parse(key: &str) -> Result<SystemKey, SchemaError> {
        let unknown = || SchemaError::UnknownKey { key: excerpt(key) };
        match key {
            "name" => Ok(SystemKey::Name),
            "register-name" => Ok(SystemKey::RegisterName),
            "custodian" => Ok(SystemKey::Custodian),
            _ => match key.split_once(':') {
                Some(("field", name)) if !name.is_empty() => Ok(SystemKey::Field(name.to_string())),
                Some(("register", name)) if !name.is_empty() => {
                    Ok(SystemKey::Register(name.to_string()))
                }
                _ => Err(unknown()),
            },
        }
    }
}

/// A system item that does not define what its key says it does.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// Not one of the five kinds of system key.
    #[error(
        "`{key}` is not a system key (expected name, register-name, custodian, field:<name> or register:<name>)"
    )]
    UnknownKey {
        /// The key.
        key: String,
    },
    /// A required property is missing.
    #[error("the item of system entry `{key}` lacks the `{property}` property")]
    MissingProperty {
        /// The system key.
        key: String,
        /// The property.
        property: &'static str,
    },
    /// A property has the wrong shape or value.
    #[error("the item of system entry `{key}`: `{property}` must be {expected}")]
    BadProperty {
        /// The system key.
        key: String,
        /// The property.
        property: &'static str,
        /// What it must be.
        expected: String,
    },
    /// A name or text a new definition may not hold.
    #[error("the item of system entry `{key}`: `{property}` {problem}")]
    BadText {
        /// The system key.
        key: String,
        /// The property.
        property: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A datatype Regis does not validate, in a new definition.
    #[error(
        "the item of system entry `{key}`: datatype `{datatype}` is not one of string, text, integer, datetime, timestamp, period, curie, url, point, hash"
    )]
    UnknownDatatype {
        /// The system key.
        key: String,
        /// The datatype.
        datatype: String,
    },
}

/// The longest name (of a register or a field) a new definition may give,
/// in bytes of UTF-8.
pub const MAX_NAME_BYTES: usize = 100;

/// The longest text (title, description, custodian…) a new definition may
/// give, in bytes of UTF-8.
pub const MAX_TEXT_BYTES: usize = 10_000;

/// How many values a field takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cardinality {
    /// `1`: a single string.
    One,
    /// `n`: an array of strings.
    Many,
}

impl Cardinality {
    /// `1` or `n`.
    pub fn as_str(self) -> &'static str {
        match self {
            Cardinality::One => "1",
            Cardinality::Many => "n",
        }
    }
}

/// A field definition (`field:<name>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// The field's name.
    pub name: String,
    /// Its datatype.
    pub datatype: Datatype,
    /// One value or many.
    pub cardinality: Cardinality,
    /// The register its values are keys of, if any.
    pub register: Option<String>,
    /// Its description.
    pub text: Option<String>,
    /// Its phase (alpha, beta…).
    pub phase: Option<String>,
}

/// A register definition (`register:<name>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterDefinition {
    /// The register's name.
    pub name: String,
    /// Its fields, in the order the API's CSV columns follow.
    pub fields: Vec<String>,
    /// The whole definition (phase, registry, text, copyright…).
    pub item: Item,
}

/// What the system log says about a register, latest entry per key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Schema {
    name: Option<String>,
    register_name: Option<String>,
    custodian: Option<String>,
    fields: BTreeMap<String, Field>,
    registers: BTreeMap<String, RegisterDefinition>,
}

impl Schema {
    /// A schema with nothing defined.
    pub fn new() -> Schema {
        Schema::default()
    }

    /// A schema whose register is known by name before any `name` entry
    /// (the reference implementation took it from its configuration).
    pub fn named(name: impl Into<String>) -> Schema {
        Schema {
            name: Some(name.into()),
            ..Schema::default()
        }
    }

    /// Folds one system entry in. The definition's name comes from the key:
    /// published data has `field:end-date` defined by an item whose `field`
    /// says `start-date` (territory register); [`Self::check_definition`] is the
    /// stricter rule for new definitions.
    pub fn apply(&mut self, key: &str, item: &Item) -> Result<(), SchemaError> {
        match SystemKey::parse(key)? {
            SystemKey::Name => self.name = Some(one_property(key, item, "name")?),
            SystemKey::RegisterName => {
                self.register_name = Some(one_property(key, item, "register-name")?)
            }
            SystemKey::Custodian => self.custodian = Some(one_property(key, item, "custodian")?),
            SystemKey::Field(name) => {
                let field = field_from_item(key, &name, item)?;
                self.fields.insert(name, field);
            }
            SystemKey::Register(name) => {
                let definition = register_from_item(key, &name, item)?;
                self.registers.insert(name, definition);
            }
        }
        Ok(())
    }

    /// The rules of a new definition, beyond what [`Self::apply`] needs to
    /// read it: every property a single line of at most
    /// [`MAX_TEXT_BYTES`] without control characters, names (`name`,
    /// `field`, `register`, `fields`) at most [`MAX_NAME_BYTES`] and not
    /// empty (a name is written raw in RSF, CSV headers and leaves; a
    /// control character would break those lines), a field's datatype one
    /// Regis validates, and a `field:<f>` or `register:<r>` item's own
    /// `field` or `register` property naming `f` or `r`.
    pub fn check_definition(key: &str, item: &Item) -> Result<(), SchemaError> {
        let system_key = SystemKey::parse(key)?;
        for (property, value) in item.fields() {
            let name = matches!(property.as_ref(), "name" | "field" | "register" | "fields");
            for text in value.strings() {
                check_text(key, &property, text, name)?;
            }
        }
        match system_key {
            SystemKey::Field(name) => {
                check_name(key, item, "field", &name)?;
                let datatype = one_property(key, item, "datatype")?;
                if let Datatype::Unvalidated(datatype) = Datatype::from_name(&datatype) {
                    return Err(SchemaError::UnknownDatatype {
                        key: excerpt(key),
                        datatype: excerpt(&datatype),
                    });
                }
                Ok(())
            }
            SystemKey::Register(name) => check_name(key, item, "register", &name),
            SystemKey::Name | SystemKey::RegisterName | SystemKey::Custodian => Ok(()),
        }
    }

    /// The register's identifier, which is also its primary-key field.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Its title (`register-name`).
    pub fn register_name(&self) -> Option<&str> {
        self.register_name.as_deref()
    }

    /// Its custodian.
    pub fn custodian(&self) -> Option<&str> {
        self.custodian.as_deref()
    }

    /// A field definition.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.get(name)
    }

    /// Every field definition, by name.
    pub fn fields(&self) -> impl Iterator<Item = &Field> {
        self.fields.values()
    }

    /// A register definition.
    pub fn register(&self, name: &str) -> Option<&RegisterDefinition> {
        self.registers.get(name)
    }

    /// The register's own definition.
    pub fn definition(&self) -> Option<&RegisterDefinition> {
        self.registers.get(self.name.as_deref()?)
    }

    /// Checks a user item for the entry of `key`.
    pub fn validate(&self, key: &str, item: &Item) -> Result<(), ValidationError> {
        let name = self.name.as_deref().ok_or(ValidationError::Unnamed)?;
        let definition = self
            .registers
            .get(name)
            .ok_or_else(|| ValidationError::Undefined {
                register: name.to_string(),
            })?;
        let mut primary_key = None;
        for (field_name, value) in item.fields() {
            if !definition.fields.iter().any(|field| *field == field_name) {
                return Err(ValidationError::UnknownField {
                    field: field_name.into_owned(),
                    register: name.to_string(),
                });
            }
            let field = self.fields.get(field_name.as_ref()).ok_or_else(|| {
                ValidationError::UndefinedField {
                    field: field_name.to_string(),
                }
            })?;
            let cardinality_ok = matches!(
                (field.cardinality, &value),
                (Cardinality::One, Value::One(_)) | (Cardinality::Many, Value::Many(_))
            );
            if !cardinality_ok {
                return Err(ValidationError::Cardinality {
                    field: field.name.clone(),
                    cardinality: field.cardinality,
                });
            }
            for text in value.strings() {
                field
                    .datatype
                    .check(text)
                    .map_err(|rule| ValidationError::Datatype {
                        field: field.name.clone(),
                        value: excerpt(text),
                        datatype: field.datatype.name().to_string(),
                        rule,
                    })?;
            }
            if field_name == name
                && let Value::One(text) = value
            {
                primary_key = Some(text);
            }
        }
        match primary_key {
            None => Err(ValidationError::MissingPrimaryKey {
                field: name.to_string(),
            }),
            Some(value) if value != key => Err(ValidationError::KeyMismatch {
                field: name.to_string(),
                value: excerpt(&value),
                key: excerpt(key),
            }),
            Some(_) => Ok(()),
        }
    }
}

/// A user item that its register's definition does not allow.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// No `name` system entry says which register this is.
    #[error("the register's name is unknown (no `name` system entry)")]
    Unnamed,
    /// No `register:<name>` system entry defines it.
    #[error("register `{register}` has no definition (no `register:{register}` system entry)")]
    Undefined {
        /// The register.
        register: String,
    },
    /// A field the register does not have.
    #[error("field `{field}` is not one of register `{register}`'s fields")]
    UnknownField {
        /// The field.
        field: String,
        /// The register.
        register: String,
    },
    /// A field of the register without a `field:<name>` definition.
    #[error("field `{field}` has no definition (no `field:{field}` system entry)")]
    UndefinedField {
        /// The field.
        field: String,
    },
    /// One value where many are due, or the reverse.
    #[error(
        "field `{field}` has cardinality {}: its value must be {}",
        cardinality.as_str(),
        match cardinality { Cardinality::One => "a single string", Cardinality::Many => "an array of strings" }
    )]
    Cardinality {
        /// The field.
        field: String,
        /// Its cardinality.
        cardinality: Cardinality,
    },
    /// A value not of its field's datatype.
    #[error("field `{field}`: `{value}` is not a valid {datatype}: {rule}")]
    Datatype {
        /// The field.
        field: String,
        /// The value (at most 200 characters of it).
        value: String,
        /// The field's datatype.
        datatype: String,
        /// The rule the value breaks.
        rule: &'static str,
    },
    /// The primary-key field (named like the register) is missing.
    #[error("the primary-key field `{field}` is missing")]
    MissingPrimaryKey {
        /// The field.
        field: String,
    },
    /// The primary-key field differs from the entry's key.
    #[error("the primary-key field `{field}` is `{value}` but the entry's key is `{key}`")]
    KeyMismatch {
        /// The field.
        field: String,
        /// Its value.
        value: String,
        /// The entry's key.
        key: String,
    },
}

fn one_property(key: &str, item: &Item, property: &'static str) -> Result<String, SchemaError> {
    match item.get(property) {
        None => Err(SchemaError::MissingProperty {
            key: excerpt(key),
            property,
        }),
        Some(Value::One(text)) => Ok(text.into_owned()),
        Some(Value::Many(_)) => Err(SchemaError::BadProperty {
            key: excerpt(key),
            property,
            expected: "a single string".into(),
        }),
    }
}

fn optional_property(
    key: &str,
    item: &Item,
    property: &'static str,
) -> Result<Option<String>, SchemaError> {
    match item.get(property) {
        None => Ok(None),
        Some(_) => one_property(key, item, property).map(Some),
    }
}

/// `property` must be `expected_name`, the name in the system key.
fn check_name(
    key: &str,
    item: &Item,
    property: &'static str,
    expected_name: &str,
) -> Result<(), SchemaError> {
    if one_property(key, item, property)? == expected_name {
        Ok(())
    } else {
        Err(SchemaError::BadProperty {
            key: excerpt(key),
            property,
            expected: format!("`{}`", excerpt(expected_name)),
        })
    }
}

/// A text of a new definition: not too long, no control character, and a
/// name not empty.
fn check_text(key: &str, property: &str, text: &str, name: bool) -> Result<(), SchemaError> {
    let limit = if name { MAX_NAME_BYTES } else { MAX_TEXT_BYTES };
    let problem = if text.len() > limit {
        format!("is {} bytes long; at most {limit} are allowed", text.len())
    } else if let Some(c) = text.chars().find(|c| c.is_control()) {
        format!("holds the control character U+{:04X}", u32::from(c))
    } else if name && text.is_empty() {
        "is empty".to_owned()
    } else {
        return Ok(());
    };
    Err(SchemaError::BadText {
        key: excerpt(key),
        property: excerpt(property),
        problem,
    })
}

fn field_from_item(key: &str, name: &str, item: &Item) -> Result<Field, SchemaError> {
    let cardinality = match one_property(key, item, "cardinality")?.as_str() {
        "1" => Cardinality::One,
        "n" => Cardinality::Many,
        _ => {
            return Err(SchemaError::BadProperty {
                key: excerpt(key),
                property: "cardinality",
                expected: "`1` or `n`".into(),
            });
        }
    };
    Ok(Field {
        name: name.to_string(),
        datatype: Datatype::from_name(&one_property(key, item, "datatype")?),
        cardinality,
        register: optional_property(key, item, "register")?,
        text: optional_property(key, item, "text")?,
        phase: optional_property(key, item, "phase")?,
    })
}

fn register_from_item(
    key: &str,
    name: &str,
    item: &Item,
) -> Result<RegisterDefinition, SchemaError> {
    check_name(key, item, "register", name)?;
    let fields = match item.get("fields") {
        None => {
            return Err(SchemaError::MissingProperty {
                key: excerpt(key),
                property: "fields",
            });
        }
        Some(Value::Many(fields)) => fields.into_iter().map(|field| field.into_owned()).collect(),
        Some(Value::One(_)) => {
            return Err(SchemaError::BadProperty {
                key: excerpt(key),
                property: "fields",
                expected: "an array of field names".into(),
            });
        }
    };
    Ok(RegisterDefinition {
        name: name.to_string(),
        fields,
        item: item.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(json: &str) -> Item {
        Item::from_canonical(json).unwrap()
    }

    fn country() -> Schema {
        let mut schema = Schema::new();
        schema
            .apply("name", &item(r#"{"name":"country"}"#))
            .unwrap();
        for field in [
            r#"{"cardinality":"1","datatype":"string","field":"country","register":"country"}"#,
            r#"{"cardinality":"1","datatype":"string","field":"name"}"#,
            r#"{"cardinality":"1","datatype":"datetime","field":"end-date"}"#,
            r#"{"cardinality":"n","datatype":"curie","field":"links"}"#,
        ] {
            let item = item(field);
            let name = item.get_one("field").unwrap().into_owned();
            schema.apply(&format!("field:{name}"), &item).unwrap();
        }
        schema
            .apply(
                "register:country",
                &item(r#"{"fields":["country","name","end-date","links"],"register":"country"}"#),
            )
            .unwrap();
        schema
    }

    #[test]
    fn system_keys() {
        assert_eq!(
            SystemKey::parse("field:end-date"),
            Ok(SystemKey::Field("end-date".into()))
        );
        assert_eq!(
            SystemKey::parse("register:country"),
            Ok(SystemKey::Register("country".into()))
        );
        for bad in ["field:", "fields:x", "names", "register", "GB"] {
            assert!(SystemKey::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn definitions_are_checked() {
        let mut schema = Schema::new();
        let field = item(r#"{"cardinality":"1","datatype":"string","field":"name"}"#);
        assert!(matches!(
            Schema::check_definition("field:other", &field),
            Err(SchemaError::BadProperty { .. })
        ));
        assert_eq!(Schema::check_definition("field:name", &field), Ok(()));
        schema.apply("field:other", &field).unwrap();
        assert_eq!(schema.field("other").unwrap().name, "other");
        let field = item(r#"{"cardinality":"2","datatype":"string","field":"name"}"#);
        assert!(matches!(
            schema.apply("field:name", &field),
            Err(SchemaError::BadProperty { .. })
        ));
        let field = item(r#"{"datatype":"string","field":"name"}"#);
        assert!(matches!(
            schema.apply("field:name", &field),
            Err(SchemaError::MissingProperty { .. })
        ));
    }

    #[test]
    fn validation_names_the_field_the_value_and_the_rule() {
        let schema = country();
        assert_eq!(schema.definition().unwrap().fields.len(), 4);
        let ok = item(r#"{"country":"GB","end-date":"2001","links":["a:b"],"name":"UK"}"#);
        assert_eq!(schema.validate("GB", &ok), Ok(()));
        let cases = [
            (
                r#"{"colour":"red","country":"GB"}"#,
                "field `colour` is not one of register `country`'s fields",
            ),
            (
                r#"{"country":"GB","end-date":"2001-02-30"}"#,
                "field `end-date`: `2001-02-30` is not a valid datetime: the day is not in the month",
            ),
            (
                r#"{"country":"GB","links":"a:b"}"#,
                "field `links` has cardinality n: its value must be an array of strings",
            ),
            (
                r#"{"country":"GB","links":["a:"]}"#,
                "field `links`: `a:` is not a valid curie: a CURIE is `prefix:reference` with both parts non-empty, or a reference alone",
            ),
            (
                r#"{"name":"UK"}"#,
                "the primary-key field `country` is missing",
            ),
            (
                r#"{"country":"FR"}"#,
                "the primary-key field `country` is `FR` but the entry's key is `GB`",
            ),
        ];
        for (json, message) in cases {
            assert_eq!(
                schema.validate("GB", &item(json)).unwrap_err().to_string(),
                message
            );
        }
        assert_eq!(
            Schema::new().validate("GB", &ok),
            Err(ValidationError::Unnamed)
        );
        assert_eq!(
            Schema::named("x").validate("GB", &ok),
            Err(ValidationError::Undefined {
                register: "x".into()
            })
        );
    }
}
