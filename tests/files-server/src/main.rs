//! Run the Azure Files test server by hand: `files-server [PORT]`. Prints the endpoint.

fn main() -> anyhow::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .map(|p| p.parse())
        .transpose()?
        .unwrap_or(0);
    let server = files_server::FilesServer::start_on(
        ([127, 0, 0, 1], port).into(),
        files_server::ACCOUNT,
        files_server::KEY,
    )?;
    server.create_share("backups");
    println!(
        "Azure Files test server at {} (account {}, share `backups`); Ctrl-C to stop",
        server.endpoint(),
        server.account()
    );
    loop {
        std::thread::park();
    }
}
