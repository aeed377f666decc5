//! Name lookups for plugins: only the host names their TCP grants name. A
//! grant of `redis.internal:6379` lets the plugin resolve `redis.internal`,
//! not every name (which would be a channel out: `secret.attacker.example`,
//! and a map of the internal network). WASI's own lookup has no per-name
//! filter, so this wraps it: the same implementation, behind a check.

use wasmtime::component::{HasData, Resource};
use wasmtime_wasi::p2::bindings::sockets::ip_name_lookup::{
    Host, HostResolveAddressStream, ResolveAddressStream,
};
use wasmtime_wasi::p2::bindings::sockets::network::{self, ErrorCode, IpAddress, Network};
use wasmtime_wasi::p2::{DynPollable, SocketError};
use wasmtime_wasi::sockets::WasiSocketsCtxView;

use super::PluginState;

/// The filtered lookup, for the linker.
pub struct FilteredLookup;

impl HasData for FilteredLookup {
    type Data<'a> = LookupView<'a>;
}

/// WASI's sockets view, with the names this plugin may look up.
pub struct LookupView<'a> {
    inner: WasiSocketsCtxView<'a>,
    allowed: &'a [String],
}

/// Lower case, without a trailing dot: how names are compared.
pub(crate) fn normal(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl PluginState {
    pub(crate) fn lookup_view(&mut self) -> LookupView<'_> {
        LookupView {
            inner: WasiSocketsCtxView {
                ctx: self.wasi.sockets(),
                table: &mut self.table,
            },
            allowed: &self.lookup_names,
        }
    }
}

impl network::HostNetwork for LookupView<'_> {
    fn drop(&mut self, this: Resource<Network>) -> wasmtime::Result<()> {
        network::HostNetwork::drop(&mut self.inner, this)
    }
}

// The lookup interface uses the network interface's error conversions.
impl network::Host for LookupView<'_> {
    fn convert_error_code(&mut self, error: SocketError) -> wasmtime::Result<ErrorCode> {
        self.inner.convert_error_code(error)
    }

    fn network_error_code(
        &mut self,
        err: Resource<wasmtime_wasi::p2::bindings::sockets::network::Error>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        self.inner.network_error_code(err)
    }
}

impl Host for LookupView<'_> {
    fn resolve_addresses(
        &mut self,
        network: Resource<Network>,
        name: String,
    ) -> Result<Resource<ResolveAddressStream>, SocketError> {
        // An IP literal needs no lookup and tells nobody anything.
        let literal = name.parse::<std::net::IpAddr>().is_ok()
            || name
                .strip_prefix('[')
                .and_then(|n| n.strip_suffix(']'))
                .is_some_and(|n| n.parse::<std::net::Ipv6Addr>().is_ok());
        if !literal && !self.allowed.contains(&normal(&name)) {
            tracing::debug!("plugin name lookup of `{name}` denied (no tcp grant names it)");
            return Err(ErrorCode::AccessDenied.into());
        }
        self.inner.resolve_addresses(network, name)
    }
}

impl HostResolveAddressStream for LookupView<'_> {
    fn resolve_next_address(
        &mut self,
        resource: Resource<ResolveAddressStream>,
    ) -> Result<Option<IpAddress>, SocketError> {
        self.inner.resolve_next_address(resource)
    }

    fn subscribe(
        &mut self,
        resource: Resource<ResolveAddressStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        self.inner.subscribe(resource)
    }

    fn drop(&mut self, resource: Resource<ResolveAddressStream>) -> wasmtime::Result<()> {
        HostResolveAddressStream::drop(&mut self.inner, resource)
    }
}
