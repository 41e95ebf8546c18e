//! A simulated sorting output: a Modbus TCP server that takes a quality gate's writes (three
//! holding registers — decision code, shot number high and low word — per machine block, or
//! one coil) and keeps each as a [`Sorted`] part, so the demo can hold the gate's sorting
//! against the plant's ground truth. Reads answer the last values written.

use anyhow::Context;
use std::collections::BTreeMap;
use std::future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio_modbus::server::Service;
use tokio_modbus::server::tcp::{Server, accept_tcp_connection};
use tokio_modbus::{ExceptionCode, Request, Response};

/// Holding registers the sorter serves.
pub const REGISTERS: u16 = 1024;

/// One part as the sorter was told to handle it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sorted {
    /// First register of the write (which machine's block).
    pub register: u16,
    /// The decision code written.
    pub code: u16,
    /// The shot number written (its low 32 bits).
    pub shot: u32,
}

#[derive(Debug, Default)]
struct State {
    registers: BTreeMap<u16, u16>,
    sorted: Vec<Sorted>,
}

/// The sorter's handler and what it received.
#[derive(Debug, Clone, Default)]
pub struct Sorter {
    state: Arc<Mutex<State>>,
}

impl Sorter {
    /// Every part written so far, in arrival order.
    pub fn sorted(&self) -> Vec<Sorted> {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).sorted.clone()
    }

    fn handle(&self, req: &Request<'_>) -> Result<Response, ExceptionCode> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match req {
            Request::WriteMultipleRegisters(addr, words) => {
                let end = u32::from(*addr) + words.len() as u32;
                if words.is_empty() || end > u32::from(REGISTERS) {
                    return Err(ExceptionCode::IllegalDataAddress);
                }
                for (i, w) in words.iter().enumerate() {
                    st.registers.insert(addr + i as u16, *w);
                }
                if let [code, hi, lo] = words[..] {
                    let shot = (u32::from(hi) << 16) | u32::from(lo);
                    st.sorted.push(Sorted { register: *addr, code, shot });
                }
                Ok(Response::WriteMultipleRegisters(*addr, words.len() as u16))
            }
            Request::WriteSingleRegister(addr, w) if *addr < REGISTERS => {
                st.registers.insert(*addr, *w);
                Ok(Response::WriteSingleRegister(*addr, *w))
            }
            Request::ReadHoldingRegisters(addr, n)
                if u32::from(*addr) + u32::from(*n) <= u32::from(REGISTERS) =>
            {
                let words = (0..*n).map(|i| st.registers.get(&(addr + i)).copied().unwrap_or(0)).collect();
                Ok(Response::ReadHoldingRegisters(words))
            }
            Request::WriteSingleRegister(..) | Request::ReadHoldingRegisters(..) => {
                Err(ExceptionCode::IllegalDataAddress)
            }
            _ => Err(ExceptionCode::IllegalFunction),
        }
    }
}

impl Service for Sorter {
    type Request = Request<'static>;
    type Response = Response;
    type Exception = ExceptionCode;
    type Future = future::Ready<Result<Response, ExceptionCode>>;

    fn call(&self, req: Self::Request) -> Self::Future {
        future::ready(self.handle(&req))
    }
}

/// Binds `addr` and serves a sorter until the returned task is aborted; returns the address
/// (with the OS-picked port) and the sorter's handle.
pub async fn serve(addr: SocketAddr) -> anyhow::Result<(SocketAddr, Sorter, tokio::task::JoinHandle<()>)> {
    let listener =
        TcpListener::bind(addr).await.with_context(|| format!("sorter: cannot listen on {addr}"))?;
    let bound = listener.local_addr().context("sorter: no local address")?;
    let sorter = Sorter::default();
    let service = Arc::new(sorter.clone());
    let task = tokio::spawn(async move {
        let server = Server::new(listener);
        let new_service = |_peer| Ok(Some(Arc::clone(&service)));
        let on_connected = |stream, peer| async move { accept_tcp_connection(stream, peer, new_service) };
        let on_error = |e: std::io::Error| tracing::debug!("sorter connection error: {e}");
        if let Err(e) = server.serve(&on_connected, on_error).await {
            tracing::error!("sorter stopped: {e}");
        }
    });
    Ok((bound, sorter, task))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_three_register_write_is_one_sorted_part_and_reads_back() {
        let s = Sorter::default();
        let words = [2u16, 1, 5];
        s.handle(&Request::WriteMultipleRegisters(100, words.as_slice().into())).expect("write");
        assert_eq!(s.sorted(), [Sorted { register: 100, code: 2, shot: 65_541 }]);
        let read = s.handle(&Request::ReadHoldingRegisters(100, 3)).expect("read");
        assert_eq!(read, Response::ReadHoldingRegisters(vec![2, 1, 5]));
        assert!(s.handle(&Request::WriteMultipleRegisters(REGISTERS - 1, words.as_slice().into())).is_err());
        assert!(s.handle(&Request::ReadCoils(0, 1)).is_err());
    }
}
