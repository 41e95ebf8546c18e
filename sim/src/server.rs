//! Modbus TCP server of one simulated device: serves its register image to any number of
//! clients. Read holding registers (0x03) and read input registers (0x04, same image) are
//! answered; addresses outside the image get IllegalDataAddress, bad quantities
//! IllegalDataValue, every other function IllegalFunction. No request can make it panic.

use super::registers::DeviceImage;
use anyhow::Context;
use std::future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_modbus::server::Service;
use tokio_modbus::server::tcp::{Server, accept_tcp_connection};
use tokio_modbus::{ExceptionCode, Request, Response};

/// The request handler: a view of one device image.
#[derive(Debug, Clone)]
pub struct SimService {
    image: Arc<DeviceImage>,
}

impl SimService {
    /// A handler serving reads of `image`.
    pub fn new(image: Arc<DeviceImage>) -> Self {
        SimService { image }
    }

    /// Answers one request.
    pub fn handle(&self, req: &Request<'_>) -> Result<Response, ExceptionCode> {
        match *req {
            Request::ReadHoldingRegisters(addr, n) => {
                self.image.read(addr, n).map(Response::ReadHoldingRegisters)
            }
            Request::ReadInputRegisters(addr, n) => {
                self.image.read(addr, n).map(Response::ReadInputRegisters)
            }
            _ => Err(ExceptionCode::IllegalFunction),
        }
    }
}

impl Service for SimService {
    type Request = Request<'static>;
    type Response = Response;
    type Exception = ExceptionCode;
    type Future = future::Ready<Result<Response, ExceptionCode>>;

    fn call(&self, req: Self::Request) -> Self::Future {
        future::ready(self.handle(&req))
    }
}

/// A running server.
#[derive(Debug)]
pub struct Served {
    /// The address it listens on (with the OS-picked port when bound to port 0).
    pub addr: SocketAddr,
    /// The server task; aborting it stops the server.
    pub task: JoinHandle<()>,
}

/// Binds `addr` and serves `image` until the returned task is aborted.
pub async fn serve(id: &str, addr: SocketAddr, image: Arc<DeviceImage>) -> anyhow::Result<Served> {
    let listener = TcpListener::bind(addr).await.with_context(|| format!("{id}: cannot listen on {addr}"))?;
    let bound = listener.local_addr().with_context(|| format!("{id}: no local address"))?;
    let service = Arc::new(SimService::new(image));
    let id = id.to_string();
    let task = tokio::spawn(async move {
        let server = Server::new(listener);
        let new_service = |_peer| Ok(Some(Arc::clone(&service)));
        let on_connected = |stream, peer| async move { accept_tcp_connection(stream, peer, new_service) };
        let on_error = |e: std::io::Error| tracing::debug!("modbus connection error: {e}");
        if let Err(e) = server.serve(&on_connected, on_error).await {
            tracing::error!(device = %id, "modbus server stopped: {e}");
        }
    });
    Ok(Served { addr: bound, task })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SimClock;
    use crate::profiles::machine_profile;
    use moldops_shared::profile::Order;
    use tokio_modbus::client::{Reader, Writer as _};

    #[tokio::test]
    async fn a_tcp_client_reads_and_gets_exceptions() -> anyhow::Result<()> {
        let img = Arc::new(DeviceImage::new(machine_profile(), Order::Little, SimClock::new(0, 1.0)));
        img.update(|w| {
            w.number("shot_counter", 4_294_967_295.0)?;
            w.number("Cycle_Time", 67.5)
        })?;
        let served = serve("m1", "127.0.0.1:0".parse()?, Arc::clone(&img)).await?;
        let mut ctx = tokio_modbus::client::tcp::connect(served.addr).await?;
        let counter = ctx.read_holding_registers(0, 2).await?;
        assert_eq!(counter, Ok(vec![0xFFFF, 0xFFFF]));
        let cycle = ctx.read_input_registers(26, 2).await??;
        assert_eq!(f32::from_bits((u32::from(cycle[1]) << 16) | u32::from(cycle[0])), 67.5);
        assert_eq!(ctx.read_holding_registers(65_000, 10).await?, Err(ExceptionCode::IllegalDataAddress));
        assert_eq!(ctx.write_single_register(0, 1).await?, Err(ExceptionCode::IllegalFunction));
        assert_eq!(ctx.read_coils(0, 1).await?, Err(ExceptionCode::IllegalFunction));
        served.task.abort();
        Ok(())
    }
}
