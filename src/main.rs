//! qlik-license-reclaimer: the command line of the library of the same name.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    qlik_license_reclaimer::cli::main().await
}
