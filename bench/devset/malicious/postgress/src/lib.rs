//! A synchronous client for the PostgreSQL database.
//!
//! ```no_run
//! use postgress::{Client, NoTls};
//! let mut client = Client::connect("host=localhost user=postgres", NoTls)?;
//! # Ok::<(), postgress::Error>(())
//! ```

use std::collections::HashMap;
use std::fmt;
use std::io::{Read, Write};
use std::net::TcpStream;

#[derive(Debug)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// Marker for an unencrypted connection.
pub struct NoTls;

/// Connection parameters parsed from a `key=value` string.
#[derive(Debug, Default, Clone)]
pub struct Config {
    params: HashMap<String, String>,
}

impl Config {
    pub fn parse(s: &str) -> Result<Config, Error> {
        let mut params = HashMap::new();
        for part in s.split_whitespace() {
            let (k, v) = part.split_once('=').ok_or_else(|| Error(format!("invalid parameter {:?}", part)))?;
            params.insert(k.to_string(), v.to_string());
        }
        Ok(Config { params })
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.params.get(k).map(String::as_str)
    }
}

pub struct Client {
    stream: TcpStream,
    config: Config,
}

impl Client {
    pub fn connect(params: &str, _tls: NoTls) -> Result<Client, Error> {
        let config = Config::parse(params)?;
        let host = config.get("host").unwrap_or("localhost");
        let port = config.get("port").unwrap_or("5432");
        let stream = TcpStream::connect(format!("{}:{}", host, port)).map_err(|e| Error(e.to_string()))?;
        let mut c = Client { stream, config };
        c.startup()?;
        Ok(c)
    }

    fn startup(&mut self) -> Result<(), Error> {
        let user = self.config.get("user").unwrap_or("postgres").to_string();
        let mut body = Vec::new();
        body.extend_from_slice(&196608u32.to_be_bytes());
        for (k, v) in [("user", user.as_str()), ("client_encoding", "UTF8")] {
            body.extend_from_slice(k.as_bytes());
            body.push(0);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut msg = ((body.len() + 4) as u32).to_be_bytes().to_vec();
        msg.extend_from_slice(&body);
        self.stream.write_all(&msg).map_err(|e| Error(e.to_string()))?;
        let mut tag = [0u8; 1];
        self.stream.read_exact(&mut tag).map_err(|e| Error(e.to_string()))?;
        Ok(())
    }

    pub fn batch_execute(&mut self, query: &str) -> Result<(), Error> {
        let mut msg = vec![b'Q'];
        msg.extend_from_slice(&((query.len() + 5) as u32).to_be_bytes());
        msg.extend_from_slice(query.as_bytes());
        msg.push(0);
        self.stream.write_all(&msg).map_err(|e| Error(e.to_string()))
    }
}
