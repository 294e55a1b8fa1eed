//! In-process cost of load + diagnose on Keras CSVLogger files of growing length; the
//! process-level numbers (with peak memory and the Python baseline) come from
//! benches/scale.py.

use std::io::Write;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use retune::diagnose::diagnose;
use retune::lang::Lang;
use retune::run::{LoadOptions, load_run};

fn write_csv(path: &std::path::Path, rows: usize) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    writeln!(f, "epoch,accuracy,loss,val_accuracy,val_loss\r").expect("write");
    let mut loss = 2.3f64;
    for epoch in 0..rows {
        loss = (loss * 0.99995).max(0.05);
        let wobble = ((epoch * 7919) % 13) as f64 * 1e-4;
        writeln!(
            f,
            "{epoch},{},{},{},{}\r",
            1.0 - loss / 2.5,
            loss + wobble,
            1.0 - loss / 2.4,
            loss * 1.05 - wobble
        )
        .expect("write");
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut group = c.benchmark_group("load+diagnose keras csv");
    group.sample_size(10);
    for rows in [1_000usize, 100_000, 1_000_000] {
        let path = dir.path().join(format!("h{rows}.csv"));
        write_csv(&path, rows);
        group.throughput(Throughput::Elements(rows as u64));
        group.bench_with_input(BenchmarkId::from_parameter(rows), &path, |b, path| {
            let options = LoadOptions {
                metrics: path.clone(),
                ..LoadOptions::default()
            };
            b.iter(|| {
                let run = load_run(&options).expect("loads");
                diagnose(&run, Lang::En)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
