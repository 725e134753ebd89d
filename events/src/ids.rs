//! Identifiers: devices, workspaces, aggregates and events are UUIDs chosen once by their author
//! (DESIGN.md rules 1 and 2) and never changed. Parsing is strict: only the hyphenated form.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

/// A malformed identifier, naming which kind and the text that was given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {kind} {text:?}: expected a hyphenated UUID")]
pub struct IdError {
    pub kind: &'static str,
    pub text: String,
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Uuid);

        impl $name {
            /// Wraps a UUID the caller generated (ids are injected, never made here).
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The underlying UUID.
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(text: &str) -> Result<Self, IdError> {
                let err = || IdError { kind: $kind, text: text.chars().take(64).collect() };
                if text.len() != 36 {
                    return Err(err());
                }
                Uuid::try_parse(text).map(Self).map_err(|_| err())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }
    };
}

uuid_id!(
    /// A device: a browser profile's Tandem, another client, or the server itself.
    DeviceId,
    "device id"
);
uuid_id!(
    /// A workspace: the unit of sync, sequence numbering and (later) access.
    WorkspaceId,
    "workspace id"
);
uuid_id!(
    /// An aggregate (a list or a todo), whose events carry dense versions from 1.
    AggregateId,
    "aggregate id"
);
uuid_id!(
    /// An event, the idempotency key everywhere, forever.
    EventId,
    "event id"
);

impl WorkspaceId {
    /// The workspace every device and the server use before accounts exist (CONTRACT.md: a
    /// default workspace). Well known, so that no device needs a round trip to learn it.
    pub const DEFAULT: Self = Self(Uuid::from_u128(0x7a4d_e000_0000_4000_8000_0000_0000_0001));
}

impl AggregateId {
    /// The aggregate of `device`'s profile in `workspace` (its name): a name-based UUID (v5)
    /// of the device id within the workspace's namespace, so every device computes the same id
    /// without a round trip, a device has one per workspace (rule 21), and nobody can make
    /// another aggregate's id collide with it.
    pub fn device(workspace: WorkspaceId, device: DeviceId) -> Self {
        Self(Uuid::new_v5(&workspace.0, device.0.as_bytes()))
    }
}

/// The namespace of [`EventId::of_command`]'s name-based ids.
const COMMAND_EVENTS: Uuid = Uuid::from_u128(0x7a4d_e000_0000_4000_8000_0000_0000_00c0);

impl EventId {
    /// The `index`th event (from 0) recorded by the command `command` (an id the page mints): a
    /// name-based UUID (v5), so a command sent again — to a store that lost its record of the
    /// command, like a tab's store in memory replaced by another's — makes events with the
    /// same ids, which that store, once it has them from the server, recognises (rule 18
    /// beyond one store), and which the server never takes twice.
    pub fn of_command(command: Uuid, index: u32) -> Self {
        let mut name = [0u8; 20];
        name[..16].copy_from_slice(command.as_bytes());
        name[16..].copy_from_slice(&index.to_be_bytes());
        Self(Uuid::new_v5(&COMMAND_EVENTS, &name))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_commands_events_have_ids_of_the_command_and_their_index() {
        let c = uuid::Uuid::from_u128(0x0190_f5a2_7c3e_7b4a_9d2e_1234_5678_90ab);
        let d = uuid::Uuid::from_u128(0x0190_f5a2_7c3e_7b4a_9d2e_1234_5678_90ac);
        let a = super::EventId::of_command(c, 0);
        assert_eq!(a, super::EventId::of_command(c, 0));
        assert_ne!(a, super::EventId::of_command(c, 1));
        assert_ne!(a, super::EventId::of_command(d, 0));
        assert_eq!(a.as_uuid().get_version_num(), 5);
    }

    use super::*;

    #[test]
    fn parses_and_prints_the_hyphenated_form() {
        let text = "0190f5a2-7c3e-7b4a-9d2e-1234567890ab";
        let id: EventId = text.parse().unwrap();
        assert_eq!(id.to_string(), text);
    }

    #[test]
    fn a_devices_aggregate_is_one_per_workspace() {
        let d: DeviceId = "0190f5a2-7c3e-7b4a-9d2e-1234567890ab".parse().unwrap();
        let other: WorkspaceId = "0190f5a2-7c3e-7b4a-9d2e-000000000001".parse().unwrap();
        let a = AggregateId::device(WorkspaceId::DEFAULT, d);
        assert_eq!(a, AggregateId::device(WorkspaceId::DEFAULT, d));
        assert_ne!(a, AggregateId::device(other, d));
        assert_ne!(a.as_uuid(), d.as_uuid());
        assert_eq!(a.as_uuid().get_version_num(), 5);
    }

    #[test]
    fn rejects_other_forms_with_the_kind_named() {
        for bad in [
            "",
            "xyz",
            "0190f5a27c3e7b4a9d2e1234567890ab",
            "{0190f5a2-7c3e-7b4a-9d2e-1234567890ab}",
        ] {
            let err = bad.parse::<DeviceId>().unwrap_err();
            assert_eq!(err.kind, "device id", "{bad}");
            assert!(err.to_string().contains("malformed device id"));
        }
    }
}
