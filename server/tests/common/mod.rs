//! Starting a real server on 127.0.0.1:0 with a temp data dir, for the integration tests.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use server::config::Limits;
use server::Config;
use tokio::sync::oneshot;

pub struct Running {
    pub base: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), server::ServeError>>,
    pub data_dir: tempfile::TempDir,
}

pub async fn start() -> Running {
    start_with(Limits::default()).await
}

pub async fn start_with(limits: Limits) -> Running {
    let data_dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = Config {
        addr,
        data_dir: data_dir.path().to_path_buf(),
        site_root: data_dir.path().join("site"),
        limits,
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server::run(listener, config, async {
        let _ = stopped.await;
    }));
    Running {
        base: format!("http://{addr}"),
        stop: Some(stop),
        task,
        data_dir,
    }
}

impl Running {
    pub async fn stop(mut self) -> (Duration, tempfile::TempDir) {
        let begun = Instant::now();
        self.stop.take().unwrap().send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), &mut self.task)
            .await
            .expect("the server stops within 5 s")
            .unwrap()
            .unwrap();
        (begun.elapsed(), self.data_dir)
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}
