//! A tiny synchronous HTTP server.
//!
//! ```no_run
//! let server = tiny_server::Server::http("127.0.0.1:8000").unwrap();
//! for mut req in server.incoming_requests() {
//!     let _ = req.respond(200, "hello world");
//! }
//! ```

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};

pub struct Server {
    listener: TcpListener,
}

pub struct Request {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    stream: TcpStream,
}

impl Server {
    pub fn http<A: ToSocketAddrs>(addr: A) -> std::io::Result<Server> {
        Ok(Server { listener: TcpListener::bind(addr)? })
    }

    pub fn incoming_requests(&self) -> impl Iterator<Item = Request> + '_ {
        self.listener.incoming().filter_map(|s| s.ok()).filter_map(read_request)
    }
}

fn read_request(stream: TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let url = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Some(Request { method, url, headers, stream })
}

impl Request {
    pub fn respond(&mut self, status: u16, body: &str) -> std::io::Result<()> {
        let reason = match status {
            200 => "OK",
            404 => "Not Found",
            500 => "Internal Server Error",
            _ => "",
        };
        write!(
            self.stream,
            "HTTP/1.1 {} {}\r\nContent-Length: {}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{}",
            status,
            reason,
            body.len(),
            body
        )
    }
}
