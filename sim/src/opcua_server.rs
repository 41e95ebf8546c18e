//! OPC UA server of one simulated machine (cargo feature `opcua`, on by default): the nodes
//! of the node map `deploy/opcua/moldops-sim-machine.toml` ([`machine_node_map`]) in the
//! namespace `urn:moldops:sim`, under an `Objects/<machine id>` folder, served by async-opcua's
//! server with its in-memory node manager. Security None, anonymous only; no application
//! certificate (none is needed without security).
//!
//! [`UaImage::write_step`] sets every node of a step under one lock of the address space, the
//! cycle counter last, so a Read sees a shot's values together with its counter and a
//! subscriber notified of the counter reads a consistent set.

use super::process::{MachineState, Step};
use super::profiles::{machine_node_map, machine_profile};
use anyhow::{Context, anyhow};
use moldops_edge::sources::opcua::map::NodeProfile;
use moldops_shared::profile::DataType;
use opcua::server::diagnostics::NamespaceMetadata;
use opcua::server::node_manager::memory::{SimpleNodeManager, simple_node_manager};
use opcua::server::{ServerBuilder, SubscriptionCache};
use opcua::types::{DataTypeId, DataValue, DateTime, NodeId, ObjectId, QualifiedName, UAString, Variant};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Namespace of the simulator's nodes (the `nsu=` of the node map).
pub const NAMESPACE_URI: &str = "urn:moldops:sim";

/// The nodes of one machine, written by its task.
pub struct UaImage {
    manager: Arc<SimpleNodeManager>,
    subscriptions: Arc<SubscriptionCache>,
    /// The node map served (its roles name the nodes a step sets).
    map: NodeProfile,
    /// Record name → node, with the OPC UA type served.
    nodes: HashMap<String, (NodeId, Kind)>,
}

impl std::fmt::Debug for UaImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UaImage").field("nodes", &self.nodes.len()).finish_non_exhaustive()
    }
}

/// How a record name's value is served.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    UInt16,
    UInt32,
    UInt64,
    Float,
    Double,
    Text,
    Time,
}

impl Kind {
    /// The kind of record `name`: the timestamp role is a DateTime, others follow the Modbus
    /// machine profile's tag type.
    fn of(name: &str) -> Kind {
        let p = machine_profile();
        if p.timestamp.as_deref() == Some(name) {
            return Kind::Time;
        }
        match p.tag(name).map(|t| t.dtype) {
            Some(DataType::U16 | DataType::I16) => Kind::UInt16,
            Some(DataType::U32 | DataType::I32) => Kind::UInt32,
            Some(DataType::U64) => Kind::UInt64,
            Some(DataType::F32) => Kind::Float,
            Some(DataType::String) => Kind::Text,
            Some(DataType::F64) | None => Kind::Double,
        }
    }

    fn data_type(self) -> DataTypeId {
        match self {
            Kind::UInt16 => DataTypeId::UInt16,
            Kind::UInt32 => DataTypeId::UInt32,
            Kind::UInt64 => DataTypeId::UInt64,
            Kind::Float => DataTypeId::Float,
            Kind::Double => DataTypeId::Double,
            Kind::Text => DataTypeId::String,
            Kind::Time => DataTypeId::DateTime,
        }
    }

    /// A number as this kind (saturating for integers; a time in ms since the epoch).
    fn number(self, v: f64) -> Variant {
        match self {
            Kind::UInt16 => Variant::UInt16(v as u16),
            Kind::UInt32 => Variant::UInt32(v as u32),
            Kind::UInt64 => Variant::UInt64(v as u64),
            Kind::Float => Variant::Float(v as f32),
            Kind::Double => Variant::Double(v),
            Kind::Text => Variant::String(UAString::from(format!("{v}"))),
            Kind::Time => time(v as i64),
        }
    }

    /// The value before the first write: zero, empty text, a null time ("no cycle yet").
    fn initial(self) -> Variant {
        match self {
            Kind::Text => Variant::String(UAString::from("")),
            Kind::Time => Variant::DateTime(Box::new(DateTime::null())),
            k => k.number(0.0),
        }
    }
}

fn time(ms: i64) -> Variant {
    let t = chrono::DateTime::from_timestamp_millis(ms).map_or_else(DateTime::null, DateTime::from);
    Variant::DateTime(Box::new(t))
}

impl UaImage {
    /// Writes a machine step: state and mold always; for a shot its time and values, then the
    /// counter — all under one lock, the counter last.
    pub fn write_step(&self, step: &Step) -> anyhow::Result<()> {
        let map = &self.map;
        let mut values: Vec<(&str, Variant)> = Vec::new();
        if let Some(state) = map.state.as_deref() {
            values.push((state, self.kind(state)?.number(f64::from(step.state as u16))));
        }
        if let Some(mold) = map.mold_code.as_deref() {
            values.push((mold, Variant::String(UAString::from(step.mold))));
        }
        if let Some(s) = &step.shot {
            if let Some(ts) = map.timestamp.as_deref() {
                values.push((ts, time(s.ts_ms)));
            }
            for (name, v) in s.values.named() {
                values.push((name, self.kind(name)?.number(v)));
            }
            let counter = map.shot_counter.as_deref().context("the sim node map has no shot_counter")?;
            values.push((counter, self.kind(counter)?.number(f64::from(s.number))));
        }
        self.set(values)
    }

    /// Sets the machine state (e.g. idle after the last shot).
    pub fn set_state(&self, state: MachineState) -> anyhow::Result<()> {
        let name = self.map.state.as_deref().context("the sim node map has no state")?;
        let v = self.kind(name)?.number(f64::from(state as u16));
        self.set(vec![(name, v)])
    }

    fn kind(&self, name: &str) -> anyhow::Result<Kind> {
        self.nodes.get(name).map(|(_, k)| *k).ok_or_else(|| anyhow!("the sim serves no node {name}"))
    }

    fn set(&self, values: Vec<(&str, Variant)>) -> anyhow::Result<()> {
        let mut writes = Vec::with_capacity(values.len());
        for (name, v) in values {
            let (id, _) = self.nodes.get(name).ok_or_else(|| anyhow!("the sim serves no node {name}"))?;
            writes.push((id, None, DataValue::new_now(v)));
        }
        self.manager
            .set_values(&self.subscriptions, writes.into_iter())
            .map_err(|e| anyhow!("cannot set the machine's nodes: {e}"))
    }
}

/// A machine's OPC UA server, built and bound but not yet serving (so the first shot can be
/// written before any client sees the nodes).
pub struct UaServer {
    /// The address it listens on (with the OS-picked port when bound to port 0).
    pub addr: SocketAddr,
    /// The machine's nodes, for its task to write.
    pub image: Arc<UaImage>,
    server: opcua::server::Server,
    handle: opcua::server::ServerHandle,
    listener: TcpListener,
}

/// Binds `addr` and builds the server of machine `id`; `pki_dir` is where the library keeps its
/// (unused) certificate folders.
pub async fn bind(id: &str, addr: SocketAddr, pki_dir: &Path) -> anyhow::Result<UaServer> {
    let listener = TcpListener::bind(addr).await.with_context(|| format!("{id}: cannot listen on {addr}"))?;
    let bound = listener.local_addr().with_context(|| format!("{id}: no local address"))?;
    let namespace = NamespaceMetadata { namespace_uri: NAMESPACE_URI.into(), ..Default::default() };
    let (server, handle) = ServerBuilder::new_anonymous(format!("moldops simulated machine {id}"))
        .application_uri(format!("urn:moldops:sim:{id}"))
        .product_uri("urn:moldops:sim")
        .host(super::plant::advertised(bound).ip().to_string())
        .port(bound.port())
        .pki_dir(pki_dir)
        .create_sample_keypair(false)
        .diagnostics_enabled(false)
        .with_node_manager(simple_node_manager(namespace, "moldops-sim"))
        .build()
        .map_err(|e| anyhow!("{id}: cannot build the OPC UA server: {e}"))?;
    let manager = handle
        .node_managers()
        .get_of_type::<SimpleNodeManager>()
        .with_context(|| format!("{id}: the OPC UA server has no node manager"))?;
    let ns = handle
        .get_namespace_index(NAMESPACE_URI)
        .with_context(|| format!("{id}: namespace {NAMESPACE_URI} was not registered"))?;
    let map = machine_node_map();
    let nodes = add_nodes(&manager, &map, ns, id)?;
    let subscriptions = handle.subscriptions().clone();
    let image = Arc::new(UaImage { manager, subscriptions, map, nodes });
    Ok(UaServer { addr: bound, image, server, handle, listener })
}

/// Adds `Objects/<id>` and a variable per node of the node map.
fn add_nodes(
    manager: &SimpleNodeManager,
    map: &NodeProfile,
    ns: u16,
    id: &str,
) -> anyhow::Result<HashMap<String, (NodeId, Kind)>> {
    let mut space = manager.address_space().write();
    let folder = NodeId::new(ns, id.to_string());
    anyhow::ensure!(
        space.add_folder(&folder, QualifiedName::new(ns, id), id, &ObjectId::ObjectsFolder.into()),
        "{id}: cannot add the machine folder"
    );
    let mut nodes = HashMap::new();
    let mut variables = Vec::new();
    for n in &map.nodes {
        let node =
            moldops_edge::sources::opcua::node::NodeRef::parse(&n.node).map_err(|e| anyhow!("{id}: {e}"))?;
        let node_id = node.resolve(&namespaces(ns)).map_err(|e| anyhow!("{id}: node {}: {e}", n.node))?;
        let kind = Kind::of(&n.name);
        let name = QualifiedName::new(ns, n.name.as_str());
        let v = opcua::nodes::Variable::new_data_value(
            &node_id,
            name,
            n.name.as_str(),
            kind.data_type(),
            None,
            None,
            kind.initial(),
        );
        variables.push(v);
        nodes.insert(n.name.clone(), (node_id, kind));
    }
    let added = space.add_variables(variables, &folder);
    anyhow::ensure!(added.iter().all(|a| *a), "{id}: cannot add the machine's variables");
    Ok(nodes)
}

/// A namespace array in which [`NAMESPACE_URI`] has index `ns`.
fn namespaces(ns: u16) -> Vec<String> {
    let mut out = vec![String::new(); usize::from(ns) + 1];
    out[usize::from(ns)] = NAMESPACE_URI.into();
    out
}

impl UaServer {
    /// Serves until the returned task is aborted (which also cancels the server's sessions).
    pub fn start(self, id: &str) -> JoinHandle<()> {
        let id = id.to_string();
        let UaServer { server, handle, listener, .. } = self;
        tokio::spawn(async move {
            let _cancel_on_drop = handle.token().clone().drop_guard();
            if let Err(e) = server.run_with(listener).await {
                tracing::error!(device = %id, "opc ua server stopped: {e}");
            }
        })
    }
}

#[cfg(test)]
mod tests;
