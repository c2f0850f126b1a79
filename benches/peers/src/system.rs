//! The systems compared, in the order of the table's columns.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum System {
    Tcp,
    Tarpc,
    Zenoh,
    Nats,
    Mpreg,
    /// mpreg with lossless subscriptions (pub/sub only).
    MpregLossless,
}

impl System {
    pub const ALL: [System; 6] = [
        System::Tcp,
        System::Tarpc,
        System::Zenoh,
        System::Nats,
        System::Mpreg,
        System::MpregLossless,
    ];

    /// Name in `PEERS_SYSTEM` and `PEERS_SYSTEMS`.
    pub fn key(self) -> &'static str {
        match self {
            System::Tcp => "tcp",
            System::Tarpc => "tarpc",
            System::Zenoh => "zenoh",
            System::Nats => "nats",
            System::Mpreg => "mpreg",
            System::MpregLossless => "mpreg-lossless",
        }
    }

    /// Column heading.
    pub fn label(self) -> &'static str {
        match self {
            System::Tcp => "raw TCP",
            System::Tarpc => "tarpc",
            System::Zenoh => "zenoh",
            System::Nats => "NATS",
            System::Mpreg => "mpreg",
            System::MpregLossless => "mpreg lossless",
        }
    }

    pub fn from_key(key: &str) -> Option<System> {
        System::ALL.into_iter().find(|s| s.key() == key)
    }

    pub fn does_rpc(self) -> bool {
        self != System::MpregLossless
    }

    pub fn does_pubsub(self) -> bool {
        self != System::Tarpc
    }
}
