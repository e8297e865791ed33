//! The throwaway server starts, accepts connections, stops and starts again.

use std::net::TcpStream;

use civex_testpg::TestPostgres;

#[test]
fn starts_stops_and_starts_again() {
    let pg = TestPostgres::start().unwrap_or_else(|e| panic!("{e}"));
    let connect = || TcpStream::connect(("127.0.0.1", pg.port()));
    assert!(connect().is_ok(), "server log:\n{}", pg.log());
    pg.stop().unwrap_or_else(|e| panic!("{e}"));
    assert!(connect().is_err(), "the server still listens after stop");
    pg.start_again().unwrap_or_else(|e| panic!("{e}"));
    assert!(connect().is_ok(), "server log:\n{}", pg.log());
    assert!(pg.url().starts_with("postgres://civex@127.0.0.1:"));
}
