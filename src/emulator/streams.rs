//! The depth (0x83) and IMU (0x82) bulk streams.

use std::sync::Arc;
use std::time::Instant;

use super::clock::{Pacer, TICKS_PER_SECOND};
use super::imu::{self, ACCEL_SENSITIVITY_UG, GYRO_SENSITIVITY_UDPS};
use super::pipe::{InPipe, Message, Source};
use super::{Fault, FaultTarget, Rng, Unit, UnitState};
use crate::protocol::depth_raw::{self, RawFrameHeader};
use crate::protocol::imu::{ImuPacket, RawImuSample};
use crate::transport::{Completion, TransferError};
use crate::types::Stream;

/// A stream's schedule: item `index` is due at `anchor + index × period`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Schedule {
    pub generation: u64,
    pub anchor_ticks: u64,
    pub index: u64,
}

impl Schedule {
    /// Re-anchors when the stream just started or the timebase was reset.
    pub fn refresh(sched: &mut Option<Schedule>, pacer: &Pacer, period_ticks: u64) -> Schedule {
        let generation = pacer.generation();
        match sched {
            Some(s) if s.generation == generation => *s,
            Some(_) => {
                // Timebase reset while streaming: restart at the new zero.
                let s = Schedule {
                    generation,
                    anchor_ticks: 0,
                    index: 1,
                };
                *sched = Some(s);
                s
            }
            None => {
                let s = Schedule {
                    generation,
                    anchor_ticks: pacer.start_ticks(period_ticks),
                    index: 1,
                };
                *sched = Some(s);
                s
            }
        }
    }
}

/// Outcome of waiting for a stream's next item.
pub(crate) enum Gate {
    /// Item due: carries a snapshot of the state needed to make it.
    Go(Schedule, u64),
    /// Nothing this time (deadline).
    Idle,
    /// Gone.
    Disconnected,
}

/// Waits until the stream may deliver its next item; `active` says whether the stream runs and
/// returns (period in ticks, extra delay in ticks) from the unit's state.
pub(crate) fn gate(
    unit: &Unit,
    stream: Stream,
    target: FaultTarget,
    sched: &mut Option<Schedule>,
    deadline: Instant,
    active: impl Fn(&UnitState, &Unit) -> Option<(u64, i64)>,
) -> Gate {
    loop {
        if unit.is_disconnected() {
            unit.pacer.leave(stream);
            return Gate::Disconnected;
        }
        let st = unit.lock();
        let Some((period, delay)) = active(&st, unit) else {
            *sched = None;
            unit.pacer.leave(stream);
            let now = Instant::now();
            if now >= deadline {
                return Gate::Idle;
            }
            drop(
                unit.changed
                    .wait_timeout(st, deadline - now)
                    .unwrap_or_else(|e| e.into_inner()),
            );
            continue;
        };
        let chain_subordinate = super::commands::is_subordinate(st.sync_mode)
            && unit.bus.chain_fed(unit.index)
            && !unit.external_sync_in;
        drop(st);
        if unit.stream_silenced(target) {
            unit.pacer.leave(stream);
            std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
            return Gate::Idle;
        }
        // A subordinate fed by an emulated master runs on the master's clock, one frame per
        // pulse (the IMU is free-running, but on the same clock).
        let train = if chain_subordinate {
            let Some(train) = follow_master(unit) else {
                *sched = None;
                unit.pacer.leave(stream);
                std::thread::sleep(
                    deadline
                        .saturating_duration_since(Instant::now())
                        .min(std::time::Duration::from_millis(5)),
                );
                if Instant::now() >= deadline {
                    return Gate::Idle;
                }
                continue;
            };
            if sched.is_some_and(|s| s.generation != unit.pacer.generation()) {
                *sched = None;
            }
            if sched.is_none() && stream != Stream::Imu {
                // A waiting subordinate exposes on the next pulse it sees, starting with the
                // latest one (the first of the train when it was waiting for the master).
                *sched = Some(Schedule {
                    generation: unit.pacer.generation(),
                    anchor_ticks: train.last_tick.saturating_sub(period),
                    index: 1,
                });
            }
            (stream != Stream::Imu).then_some(train.id)
        } else {
            None
        };
        let s = Schedule::refresh(sched, &unit.pacer, period);
        let ticks = (s.anchor_ticks as i64 + (s.index * period) as i64 + delay).max(0) as u64;
        if unit.pacer.wait_until(stream, ticks, s.generation, deadline) {
            let Some(train) = train else {
                return Gate::Go(s, ticks);
            };
            // The frame is exposed on the master's pulse for its slot.
            let pulse_tick = s.anchor_ticks + s.index * period;
            if unit.bus.wait_pulse(unit.index, train, pulse_tick, deadline) {
                return Gate::Go(s, ticks);
            }
            if follow_master(unit).map(|t| t.id) != Some(train) {
                *sched = None;
                continue;
            }
            return Gate::Idle;
        }
        if unit.pacer.generation() == s.generation {
            return Gate::Idle;
        }
    }
}

/// Locks a chain-fed subordinate's clock onto the train reaching its sync-in (once per train
/// and clock generation); `None` while no pulses arrive.
fn follow_master(unit: &Unit) -> Option<super::sync::Train> {
    let train = unit.bus.train_for(unit.index)?;
    let mut followed = unit.followed.lock().unwrap_or_else(|e| e.into_inner());
    let current = (train.id, unit.pacer.generation());
    if *followed != Some(current) {
        unit.pacer
            .follow((train.epoch_instant, train.epoch_ticks), train.last_tick);
        *followed = Some((train.id, unit.pacer.generation()));
        unit.log("first-pulse", format!("tick={}", train.last_tick));
    }
    Some(train)
}

/// Depth frames on endpoint 0x83.
pub(crate) struct DepthStream {
    unit: Arc<Unit>,
    sched: Option<Schedule>,
    sequence: u32,
    template: Option<(u32, Vec<u8>)>,
}

impl DepthStream {
    pub fn new(unit: Arc<Unit>) -> DepthStream {
        DepthStream {
            unit,
            sched: None,
            sequence: 0,
            template: None,
        }
    }
}

impl Source for DepthStream {
    fn cancelled(&mut self) {
        self.unit.pacer.leave(Stream::Depth);
    }

    fn produce(
        &mut self,
        pipe: &mut InPipe,
        deadline: Instant,
    ) -> Result<Message, Option<Completion>> {
        let target = FaultTarget::Stream(Stream::Depth);
        let mode_cell = std::cell::Cell::new(0u32);
        let gate = gate(
            &self.unit,
            Stream::Depth,
            target,
            &mut self.sched,
            deadline,
            |st, unit| {
                let d = &st.depth;
                if !d.streaming || subordinate_blocked(st, unit) {
                    return None;
                }
                mode_cell.set(d.mode?);
                let period = TICKS_PER_SECOND / d.fps? as u64;
                Some((period, st.depth_delay_ticks as i64 + delay_ticks(st)))
            },
        );
        let (s, ticks) = match gate {
            Gate::Go(s, t) => (s, t),
            Gate::Idle => return Err(None),
            Gate::Disconnected => return Err(pipe.fail_front(TransferError::Disconnected)),
        };
        if let Some(sc) = &mut self.sched {
            sc.index = s.index + 1;
        }
        let mode = mode_cell.get();
        let size = depth_raw::raw_frame_size(mode).ok_or(None)?;
        self.sequence = self.sequence.wrapping_add(1);
        let fault = self.unit.take_fault(target);
        match fault {
            Some(Fault::Disconnect) => return Err(pipe.fail_front(TransferError::Disconnected)),
            Some(Fault::Stall) => return Err(pipe.fail_front(TransferError::Stall)),
            Some(Fault::Timeout) => return Err(None),
            _ => {}
        }
        let seconds = ticks as f64 / TICKS_PER_SECOND as f64;
        let header = RawFrameHeader {
            sensor_mode: mode,
            sequence: self.sequence,
            center_of_exposure_ticks: ticks,
            usb_sof_tick: ticks + 45,
            sensor_temp_c: 38.0 + (seconds / 600.0).min(4.0) as f32,
            laser_temp_c: [36.0, 36.5],
            scene: self.unit.scene,
        };
        // The filler after the header carries nothing (depth_raw): fill it once per mode and
        // copy it, which keeps the heaviest modes well above real time.
        if self.template.as_ref().is_none_or(|(m, _)| *m != mode) {
            let mut t = vec![0u8; size];
            depth_raw::fill_frame(&header, &mut t);
            self.template = Some((mode, t));
        }
        let template = &self.template.as_ref().ok_or(None)?.1;
        let send = match fault {
            Some(Fault::Short) => size / 2,
            Some(Fault::Oversized) => size + 200,
            _ => size,
        };
        let mut buf = pipe.take_spare();
        buf.clear();
        buf.extend_from_slice(&template[..send.min(size)]);
        buf.resize(send, 0xEE);
        if send >= depth_raw::HEADER_LEN {
            header.encode_into(&mut buf);
        }
        if fault == Some(Fault::Corrupt) {
            buf[..8].copy_from_slice(b"NOTFRAME");
        }
        Ok(Message {
            babble: fault == Some(Fault::Babble),
            ..Message::terminated(buf)
        })
    }
}

impl Drop for DepthStream {
    fn drop(&mut self) {
        self.unit.pacer.leave(Stream::Depth);
    }
}

fn delay_ticks(st: &UnitState) -> i64 {
    if super::commands::is_subordinate(st.sync_mode) {
        st.subordinate_delay_ticks as i64
    } else {
        0
    }
}

fn subordinate_blocked(st: &UnitState, unit: &Unit) -> bool {
    super::commands::is_subordinate(st.sync_mode) && !unit.sync_pulses()
}

/// Samples per IMU packet.
pub const IMU_SAMPLES_PER_PACKET: u64 = 8;

/// IMU packets on endpoint 0x82.
pub(crate) struct ImuStream {
    unit: Arc<Unit>,
    sched: Option<Schedule>,
    rng: Rng,
    started_at_ticks: Option<(u64, u64)>,
}

impl ImuStream {
    pub fn new(unit: Arc<Unit>) -> ImuStream {
        let rng = Rng::new(unit.seed ^ 0x1A1A);
        ImuStream {
            unit,
            sched: None,
            rng,
            started_at_ticks: None,
        }
    }
}

impl Drop for ImuStream {
    fn drop(&mut self) {
        self.unit.pacer.leave(Stream::Imu);
    }
}

impl Source for ImuStream {
    fn cancelled(&mut self) {
        self.unit.pacer.leave(Stream::Imu);
    }

    fn produce(
        &mut self,
        pipe: &mut InPipe,
        deadline: Instant,
    ) -> Result<Message, Option<Completion>> {
        let target = FaultTarget::Stream(Stream::Imu);
        // The schedule counts packets; a packet is due when its last sample is.
        let packet_ticks = IMU_SAMPLES_PER_PACKET * TICKS_PER_SECOND / imu::SAMPLE_RATE_HZ;
        let gate = gate(
            &self.unit,
            Stream::Imu,
            target,
            &mut self.sched,
            deadline,
            |st, _| st.imu_streaming.then_some((packet_ticks, 0)),
        );
        let s = match gate {
            Gate::Go(s, _) => s,
            Gate::Idle => return Err(None),
            Gate::Disconnected => return Err(pipe.fail_front(TransferError::Disconnected)),
        };
        if let Some(sc) = &mut self.sched {
            sc.index = s.index + 1;
        }
        let first = (s.index - 1) * IMU_SAMPLES_PER_PACKET;
        let stream_start = match self.started_at_ticks {
            Some((g, t)) if g == s.generation => t,
            _ => {
                self.started_at_ticks = Some((s.generation, s.anchor_ticks));
                s.anchor_ticks
            }
        };
        let model = self.unit.imu_model;
        let mut gyro = Vec::with_capacity(8);
        let mut accel = Vec::with_capacity(8);
        let mut temp_raw = 0;
        for i in first..first + IMU_SAMPLES_PER_PACKET {
            let t = imu::sample_ticks(s.anchor_ticks, i + 1);
            let secs = t.saturating_sub(stream_start) as f64 / TICKS_PER_SECOND as f64;
            let truth = model.sample(t, secs, &mut self.rng);
            temp_raw = truth.temperature_raw;
            gyro.push(RawImuSample {
                pts_ticks: t,
                xyz: truth.gyro_raw,
            });
            accel.push(RawImuSample {
                pts_ticks: t,
                xyz: truth.acc_raw,
            });
            self.unit.record_imu_truth(truth);
        }
        let packet = ImuPacket {
            temperature_reporting_rate_usec: imu::TEMPERATURE_PERIOD_USEC,
            temperature_sensitivity: imu::TEMPERATURE_SENSITIVITY,
            temperature_raw: temp_raw,
            gyro_sensitivity: GYRO_SENSITIVITY_UDPS,
            gyro_sample_rate_usec: imu::SAMPLE_PERIOD_USEC,
            gyro,
            accel_sensitivity: ACCEL_SENSITIVITY_UG,
            accel_sample_rate_usec: imu::SAMPLE_PERIOD_USEC,
            accel,
        };
        // At most 8 samples per packet by construction, so encoding cannot fail.
        let mut bytes = packet.encode().unwrap_or_default();
        let fault = self.unit.take_fault(target);
        match fault {
            Some(Fault::Disconnect) => return Err(pipe.fail_front(TransferError::Disconnected)),
            Some(Fault::Stall) => return Err(pipe.fail_front(TransferError::Stall)),
            Some(Fault::Timeout) => return Err(None),
            Some(Fault::Short) => bytes.truncate(40),
            Some(Fault::Oversized) => bytes.resize(400, 0),
            Some(Fault::Corrupt) => bytes[14] = 0xC8,
            _ => {}
        }
        Ok(Message {
            babble: fault == Some(Fault::Babble),
            ..Message::terminated(bytes)
        })
    }
}
