use super::*;
use crate::process::{ProcessConfig, ProcessModel, Shot};
use crate::profiles::{dryer_profile, machine_profile, scale_profile, tcu_profile};
use moldops_shared::profile::{Value, decode, decode_u64};

const START: i64 = 1_767_592_800_000;

fn shot_steps(n: usize) -> Vec<Step> {
    let cfg = ProcessConfig {
        seed: 9,
        index: 0,
        start_ms: START,
        start_shot: u32::MAX - 1,
        defect_rate: 0.03,
        sustained_faults: 0.0,
        mold_change_shots: 300,
        idle_every: 0,
    };
    let mut m = ProcessModel::new(cfg);
    std::iter::from_fn(|| Some(m.next_step())).filter(|s| s.shot.is_some()).take(n).collect()
}

/// Reads a tag from the image (live block, or one `offset` registers further) and decodes it
/// the way an edge would: with the profile as configured plus the device's word order.
fn read(img: &DeviceImage, word: Order, name: &str, offset: u16) -> Value {
    let mut p = machine_profile();
    p.word_order = word;
    let tag = p.tag(name).unwrap_or_else(|| panic!("no tag {name}")).clone();
    let regs = img.read(tag.address + offset, tag.registers()).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    let (w, b) = p.orders(&tag);
    if name == "shot_counter" || name.ends_with("_ms") {
        return Value::Number(decode_u64(&tag, &regs, w, b) as f64);
    }
    decode(&tag, &regs, w, b)
}

fn assert_shot(img: &DeviceImage, word: Order, s: &Shot, offset: u16) {
    assert_eq!(read(img, word, "shot_counter", offset), Value::Number(f64::from(s.number)));
    assert_eq!(read(img, word, "shot_time_ms", offset), Value::Number(s.ts_ms as f64));
    assert_eq!(read(img, word, "mold_code", offset), Value::Text(s.mold.to_string()));
    assert_eq!(read(img, word, "machine_state", offset), Value::Number(2.0));
    for (name, v) in s.values.named() {
        assert_eq!(read(img, word, name, offset), Value::Number(f64::from(v as f32)), "{name}");
    }
}

#[test]
fn machine_registers_decode_back_in_both_word_orders() {
    let steps = shot_steps(70);
    for word in [Order::Big, Order::Little] {
        let img = DeviceImage::new(machine_profile(), word, SimClock::new(START, 1.0));
        for step in &steps {
            write_machine(&img, step).unwrap_or_else(|e| panic!("{e:#}"));
        }
        let last = steps.last().and_then(|s| s.shot.as_ref()).unwrap_or_else(|| panic!("no shot"));
        assert_shot(&img, word, last, 0);
        // Every shot still in the ring reads back from its slot (the counter wrapped at 2^32).
        let h = machine_profile().history.unwrap_or_else(|| panic!("no history"));
        for s in steps.iter().rev().take(usize::from(h.depth)).filter_map(|s| s.shot.as_ref()) {
            let slot = u64::from(s.number) % u64::from(h.depth);
            assert_shot(&img, word, s, h.base + slot as u16 * h.stride - h.copy_of);
        }
        let Value::Number(clock) = read(&img, word, CLOCK_TAG, 0) else { panic!("clock is a number") };
        assert!(clock >= START as f64, "the controller clock runs in simulated time");
    }
}

#[test]
fn word_order_changes_the_raw_registers() {
    let step = &shot_steps(1)[0];
    let big = DeviceImage::new(machine_profile(), Order::Big, SimClock::new(START, 1.0));
    let little = DeviceImage::new(machine_profile(), Order::Little, SimClock::new(START, 1.0));
    for img in [&big, &little] {
        write_machine(img, step).unwrap_or_else(|e| panic!("{e:#}"));
    }
    let (b, l) = (big.read(20, 2), little.read(20, 2));
    assert_eq!(
        b.map(|mut v| {
            v.reverse();
            v
        }),
        l
    );
}

#[test]
fn peripherals_decode_back() {
    let step = &shot_steps(1)[0];
    let clock = SimClock::new(START, 1.0);
    let imgs = PeripheralImages {
        tcu: Arc::new(DeviceImage::new(tcu_profile(), Order::Big, clock)),
        dryer: Arc::new(DeviceImage::new(dryer_profile(), Order::Big, clock)),
        scale: Arc::new(DeviceImage::new(scale_profile(), Order::Big, clock)),
    };
    write_peripherals(&imgs, step.ts_ms, &step.peripherals).unwrap_or_else(|e| panic!("{e:#}"));
    let p = &step.peripherals;
    let cases = [
        (&*imgs.tcu, "supply_temperature", p.supply_temperature),
        (&*imgs.tcu, "flow", p.flow),
        (&*imgs.dryer, "dew_point", p.dew_point),
        (&*imgs.scale, "part_weight", p.part_weight),
        (&*imgs.scale, "weigh_counter", f64::from(p.weigh_counter)),
    ];
    for (img, name, want) in cases {
        let tag = img.profile().tag(name).unwrap_or_else(|| panic!("no tag {name}"));
        let regs = img.read(tag.address, tag.registers()).unwrap_or_else(|e| panic!("{e:?}"));
        let want = if name == "weigh_counter" { want } else { f64::from(want as f32) };
        assert_eq!(decode(tag, &regs, Order::Big, Order::Big), Value::Number(want), "{name}");
    }
}

#[test]
fn bad_reads_get_modbus_exceptions() {
    let img = DeviceImage::new(machine_profile(), Order::Big, SimClock::new(START, 1.0));
    let len = crate::profiles::image_len(img.profile()) as u16;
    assert_eq!(img.read(0, 0), Err(ExceptionCode::IllegalDataValue));
    assert_eq!(img.read(0, 126), Err(ExceptionCode::IllegalDataValue));
    assert_eq!(img.read(len - 1, 2), Err(ExceptionCode::IllegalDataAddress));
    assert_eq!(img.read(u16::MAX, 125), Err(ExceptionCode::IllegalDataAddress));
    assert_eq!(img.read(len - 125, 125).map(|v| v.len()), Ok(125));
}
