//! IMU packets on endpoint 0x82 of the colour unit: a 28-byte header, then gyro samples, then
//! accelerometer samples (14 bytes each); their conversion to SI units with the SDK's float32
//! order of operations; and the intrinsic calibration polynomial. See `protocol/imu.md`.

use thiserror::Error;

use super::wire::{i16_at, u16_at, u32_at, u64_at, PutLe};
use crate::types::ImuSample;

/// Header length.
pub const IMU_HEADER_LEN: usize = 28;
/// Length of one gyro or accelerometer sample.
pub const IMU_SAMPLE_LEN: usize = 14;
/// Most samples of each kind the host's buffer holds.
pub const IMU_MAX_SAMPLES: usize = 8;
/// The host's transfer buffer size (`IMU_MAX_PAYLOAD_SIZE`).
pub const IMU_MAX_PACKET_LEN: usize = IMU_HEADER_LEN + 2 * IMU_MAX_SAMPLES * IMU_SAMPLE_LEN;

/// A malformed IMU packet; the host drops it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum ImuError {
    /// Shorter than the header.
    #[error("IMU packet: {got} bytes, the header needs {IMU_HEADER_LEN}")]
    ShortHeader {
        /// Bytes received.
        got: usize,
    },
    /// The gyro samples run past the end.
    #[error("IMU packet: {count} gyro samples need {need} bytes, got {got}")]
    ShortGyro {
        /// Gyro sample count.
        count: u32,
        /// Bytes needed up to the end of the gyro samples.
        need: usize,
        /// Bytes received.
        got: usize,
    },
    /// The accelerometer samples run past the end.
    #[error("IMU packet: {count} accelerometer samples need {need} bytes, got {got}")]
    ShortAccel {
        /// Accelerometer sample count.
        count: u32,
        /// Bytes needed up to the end of the accelerometer samples.
        need: usize,
        /// Bytes received.
        got: usize,
    },
    /// More samples than fit in the host's 252-byte buffer (encoder side).
    #[error("IMU packet: {count} samples of one kind, at most {IMU_MAX_SAMPLES}")]
    TooManySamples {
        /// The count.
        count: usize,
    },
}

/// One raw sample: 90 kHz timestamp and three axes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RawImuSample {
    /// Device timestamp, 90 kHz ticks.
    pub pts_ticks: u64,
    /// x, y, z in LSB.
    pub xyz: [i16; 3],
}

/// The IMU packet, field for field.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ImuPacket {
    /// Temperature reporting period, µs (unused by the SDK).
    pub temperature_reporting_rate_usec: u32,
    /// Temperature sensitivity (unused by the SDK).
    pub temperature_sensitivity: u16,
    /// Raw temperature: °C = value / 256 + 15.
    pub temperature_raw: i16,
    /// Gyro sensitivity, micro-degrees/s per LSB.
    pub gyro_sensitivity: u16,
    /// Gyro sample period, µs (unused by the SDK).
    pub gyro_sample_rate_usec: u32,
    /// Accelerometer sensitivity, micro-g per LSB.
    pub accel_sensitivity: u16,
    /// Accelerometer sample period, µs (unused by the SDK).
    pub accel_sample_rate_usec: u32,
    /// Gyro samples.
    pub gyro: Vec<RawImuSample>,
    /// Accelerometer samples.
    pub accel: Vec<RawImuSample>,
}

fn read_samples(b: &[u8], off: usize, n: usize) -> Vec<RawImuSample> {
    (0..n)
        .map(|i| {
            let o = off + i * IMU_SAMPLE_LEN;
            RawImuSample {
                pts_ticks: u64_at(b, o),
                xyz: [i16_at(b, o + 8), i16_at(b, o + 10), i16_at(b, o + 12)],
            }
        })
        .collect()
}

impl ImuPacket {
    /// Decodes with the host's checks: header, then gyro samples, then accelerometer samples
    /// must fit. Trailing bytes are ignored.
    pub fn decode(b: &[u8]) -> Result<Self, ImuError> {
        if b.len() < IMU_HEADER_LEN {
            return Err(ImuError::ShortHeader { got: b.len() });
        }
        let g = u32_at(b, 14);
        let a = u32_at(b, 24);
        // Counts are untrusted: compute in u64 and compare with what arrived before allocating.
        let gyro_end = IMU_HEADER_LEN as u64 + u64::from(g) * IMU_SAMPLE_LEN as u64;
        if gyro_end > b.len() as u64 {
            return Err(ImuError::ShortGyro {
                count: g,
                need: gyro_end.min(usize::MAX as u64) as usize,
                got: b.len(),
            });
        }
        let accel_end = gyro_end + u64::from(a) * IMU_SAMPLE_LEN as u64;
        if accel_end > b.len() as u64 {
            return Err(ImuError::ShortAccel {
                count: a,
                need: accel_end.min(usize::MAX as u64) as usize,
                got: b.len(),
            });
        }
        Ok(ImuPacket {
            temperature_reporting_rate_usec: u32_at(b, 0),
            temperature_sensitivity: u16_at(b, 4),
            temperature_raw: i16_at(b, 6),
            gyro_sensitivity: u16_at(b, 8),
            gyro_sample_rate_usec: u32_at(b, 10),
            accel_sensitivity: u16_at(b, 18),
            accel_sample_rate_usec: u32_at(b, 20),
            gyro: read_samples(b, IMU_HEADER_LEN, g as usize),
            accel: read_samples(b, gyro_end as usize, a as usize),
        })
    }

    /// Encodes; at most 8 samples of each kind, so the packet fits the host's buffer.
    pub fn encode(&self) -> Result<Vec<u8>, ImuError> {
        for n in [self.gyro.len(), self.accel.len()] {
            if n > IMU_MAX_SAMPLES {
                return Err(ImuError::TooManySamples { count: n });
            }
        }
        let mut v = Vec::with_capacity(
            IMU_HEADER_LEN + (self.gyro.len() + self.accel.len()) * IMU_SAMPLE_LEN,
        );
        v.put_u32(self.temperature_reporting_rate_usec);
        v.put_u16(self.temperature_sensitivity);
        v.put_i16(self.temperature_raw);
        v.put_u16(self.gyro_sensitivity);
        v.put_u32(self.gyro_sample_rate_usec);
        v.put_u32(self.gyro.len() as u32);
        v.put_u16(self.accel_sensitivity);
        v.put_u32(self.accel_sample_rate_usec);
        v.put_u32(self.accel.len() as u32);
        for s in self.gyro.iter().chain(&self.accel) {
            v.put_u64(s.pts_ticks);
            for a in s.xyz {
                v.put_i16(a);
            }
        }
        Ok(v)
    }

    /// Temperature in °C: `value / 256 + 15` in float32 (the SDK's constant is 15).
    pub fn temperature_c(&self) -> f32 {
        f32::from(self.temperature_raw) / 256.0 + 15.0
    }

    /// Whether the gyro and accelerometer counts differ (the SDK warns and pairs min(G, A)).
    pub fn counts_differ(&self) -> bool {
        self.gyro.len() != self.accel.len()
    }

    /// The samples the SDK emits: gyro\[i\] paired with accel\[i\] for i < min(G, A), converted
    /// with [`gyro_radps`], [`accel_mps2`] and `ticks × 100 / 9` µs; uncalibrated.
    pub fn samples(&self) -> Vec<ImuSample> {
        let t = self.temperature_c();
        self.gyro
            .iter()
            .zip(&self.accel)
            .map(|(g, a)| ImuSample {
                temperature_c: t,
                acc_mps2: a.xyz.map(|v| accel_mps2(v, self.accel_sensitivity)),
                acc_timestamp_usec: super::wire::ticks_to_usec(a.pts_ticks),
                gyro_radps: g.xyz.map(|v| gyro_radps(v, self.gyro_sensitivity)),
                gyro_timestamp_usec: super::wire::ticks_to_usec(g.pts_ticks),
            })
            .collect()
    }
}

/// One gyro axis in rad/s: `raw × sensitivity × (3.141592 / 180) / 1e6`, left to right in f32.
// The SDK's truncated π, not f32::consts::PI: the result must match it bit for bit.
#[allow(clippy::approx_constant)]
pub fn gyro_radps(raw: i16, sensitivity_udps_per_lsb: u16) -> f32 {
    f32::from(raw) * f32::from(sensitivity_udps_per_lsb) * (3.141592_f32 / 180.0_f32) / 1_000_000.0
}

/// One accelerometer axis in m/s²: `raw × sensitivity × 9.81 / 1e6`, left to right in f32.
pub fn accel_mps2(raw: i16, sensitivity_ug_per_lsb: u16) -> f32 {
    f32::from(raw) * f32::from(sensitivity_ug_per_lsb) * 9.81_f32 / 1_000_000.0
}

/// Evaluates a cubic in temperature, coefficients low order first: c0 + c1·t + c2·t² + c3·t³.
fn cubic(c: &[f32], t: f32) -> f32 {
    c[0] + c[1] * t + c[2] * t * t + c[3] * t * t * t
}

/// An IMU sensor's temperature-dependent calibration tables (from the calibration JSON).
#[derive(Clone, Debug, PartialEq)]
pub struct ImuIntrinsicModel {
    /// Bias: 3 rows × 4 coefficients (`BiasTemperatureModel`).
    pub bias_temperature_model: [f32; 12],
    /// Mixing matrix: 3×3 entries × 4 coefficients, entry (r, c) at (3r + c)·4
    /// (`MixingMatrixTemperatureModel`).
    pub mixing_matrix_temperature_model: [f32; 36],
    /// Second-order scaling, 3×3 row-major (`SecondOrderScaling`; zero for the gyro).
    pub second_order_scaling: [f32; 9],
}

/// The model evaluated at one temperature.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ImuIntrinsics {
    /// Mixing matrix, row-major.
    pub mixing_matrix: [f32; 9],
    /// Bias.
    pub bias: [f32; 3],
}

impl ImuIntrinsicModel {
    /// Evaluates bias and mixing matrix at `temperature_c`.
    pub fn evaluate(&self, temperature_c: f32) -> ImuIntrinsics {
        let mut m = [0.0; 9];
        for (i, e) in m.iter_mut().enumerate() {
            *e = cubic(
                &self.mixing_matrix_temperature_model[i * 4..i * 4 + 4],
                temperature_c,
            );
        }
        let mut b = [0.0; 3];
        for (r, e) in b.iter_mut().enumerate() {
            *e = cubic(
                &self.bias_temperature_model[r * 4..r * 4 + 4],
                temperature_c,
            );
        }
        ImuIntrinsics {
            mixing_matrix: m,
            bias: b,
        }
    }

    /// Applies the evaluated tables: `M·v + b + S·(v ⊙ v)` (S is zero for the gyro).
    pub fn apply(&self, at: &ImuIntrinsics, v: [f32; 3]) -> [f32; 3] {
        let sq = v.map(|x| x * x);
        let mut out = [0.0; 3];
        for (r, o) in out.iter_mut().enumerate() {
            let row = &at.mixing_matrix[r * 3..r * 3 + 3];
            let mut acc: f32 = row.iter().zip(&v).map(|(m, x)| m * x).sum();
            acc += at.bias[r];
            let s_row = &self.second_order_scaling[r * 3..r * 3 + 3];
            acc += s_row.iter().zip(&sq).map(|(s, x)| s * x).sum::<f32>();
            *o = acc;
        }
        out
    }
}

/// Whether the SDK re-evaluates the tables: the sample temperature differs from the last
/// used one (initially 0) by more than 0.25 °C.
pub fn needs_reevaluation(last_used_c: f32, sample_c: f32) -> bool {
    (sample_c - last_used_c).abs() > 0.25
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rustfmt::skip]
    const PACKET: [u8; 28 + 2 * 14 + 14] = [
        // header
        0x1f, 0x4b, 0x00, 0x00,  // temperature reporting rate 19231 µs
        0xe8, 0x03,              // temperature sensitivity 1000
        0x00, 0x0a,              // temperature raw 2560 → 25 °C
        0x5c, 0x3b,              // gyro sensitivity 15196 µdps/LSB
        0x58, 0x02, 0x00, 0x00,  // gyro sample period 600 µs
        0x02, 0x00, 0x00, 0x00,  // 2 gyro samples
        0xe8, 0x03,              // accel sensitivity 1000 µg/LSB
        0x58, 0x02, 0x00, 0x00,  // accel sample period 600 µs
        0x01, 0x00, 0x00, 0x00,  // 1 accel sample
        // gyro 0: pts 90000, (1, -1, 100)
        0x90, 0x5f, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,  0x01, 0x00,  0xff, 0xff,  0x64, 0x00,
        // gyro 1: pts 90054, (0, 0, 0)
        0xc6, 0x5f, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,  0x00, 0x00,  0x00, 0x00,  0x00, 0x00,
        // accel 0: pts 90001, (0, 0, -1000)
        0x91, 0x5f, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,  0x00, 0x00,  0x00, 0x00,  0x18, 0xfc,
    ];

    #[test]
    fn packet_round_trip() {
        let p = ImuPacket::decode(&PACKET).unwrap();
        assert_eq!(p.gyro.len(), 2);
        assert_eq!(p.accel.len(), 1);
        assert_eq!(
            p.gyro[0],
            RawImuSample {
                pts_ticks: 90_000,
                xyz: [1, -1, 100]
            }
        );
        assert_eq!(p.accel[0].xyz, [0, 0, -1000]);
        assert_eq!(p.gyro_sensitivity, 15196);
        assert_eq!(p.encode().unwrap(), PACKET);
        assert_eq!(p.temperature_c(), 25.0);
        assert!(p.counts_differ());
    }

    #[test]
    fn conversion_pairs_min_and_uses_sdk_arithmetic() {
        let p = ImuPacket::decode(&PACKET).unwrap();
        let s = p.samples();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].gyro_timestamp_usec, 1_000_000);
        assert_eq!(s[0].acc_timestamp_usec, 1_000_011); // 90001 × 100 / 9 = 1000011.1
        #[allow(clippy::approx_constant)]
        let expected_z = 100.0_f32 * 15196.0 * (3.141592_f32 / 180.0) / 1_000_000.0;
        assert_eq!(s[0].gyro_radps[2], expected_z);
        assert_eq!(s[0].acc_mps2[2], -1000.0_f32 * 1000.0 * 9.81 / 1_000_000.0);
        assert!((s[0].acc_mps2[2] + 9.81).abs() < 1e-5);
    }

    #[test]
    fn malformed_packets() {
        assert_eq!(
            ImuPacket::decode(&PACKET[..27]),
            Err(ImuError::ShortHeader { got: 27 })
        );
        assert_eq!(
            ImuPacket::decode(&PACKET[..28 + 14]),
            Err(ImuError::ShortGyro {
                count: 2,
                need: 56,
                got: 42
            })
        );
        assert_eq!(
            ImuPacket::decode(&PACKET[..28 + 28 + 13]),
            Err(ImuError::ShortAccel {
                count: 1,
                need: 70,
                got: 69
            })
        );
        let mut huge = PACKET;
        huge[14..18].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            ImuPacket::decode(&huge),
            Err(ImuError::ShortGyro {
                count: u32::MAX,
                ..
            })
        ));
        let p = ImuPacket {
            gyro: vec![RawImuSample::default(); 9],
            ..Default::default()
        };
        assert_eq!(p.encode(), Err(ImuError::TooManySamples { count: 9 }));
    }

    #[test]
    fn max_packet_is_252_bytes() {
        let p = ImuPacket {
            gyro: vec![RawImuSample::default(); 8],
            accel: vec![RawImuSample::default(); 8],
            ..Default::default()
        };
        assert_eq!(p.encode().unwrap().len(), IMU_MAX_PACKET_LEN);
        assert_eq!(IMU_MAX_PACKET_LEN, 252);
    }

    #[test]
    fn intrinsic_polynomial() {
        let mut m = ImuIntrinsicModel {
            bias_temperature_model: [0.0; 12],
            mixing_matrix_temperature_model: [0.0; 36],
            second_order_scaling: [0.0; 9],
        };
        // Identity mixing at 0 °C with a slope on entry (0,0); bias row 1 = 1 + 2t + 3t² + 4t³.
        for d in 0..3 {
            m.mixing_matrix_temperature_model[(3 * d + d) * 4] = 1.0;
        }
        m.mixing_matrix_temperature_model[1] = 0.5;
        m.bias_temperature_model[4..8].copy_from_slice(&[1.0, 2.0, 3.0, 4.0]);
        let at = m.evaluate(2.0);
        assert_eq!(
            at.mixing_matrix,
            [2.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        );
        assert_eq!(at.bias, [0.0, 1.0 + 4.0 + 12.0 + 32.0, 0.0]);
        m.second_order_scaling[8] = 0.1;
        assert_eq!(
            m.apply(&at, [1.0, 2.0, 10.0]),
            [2.0, 2.0 + 49.0, 10.0 + 0.1 * 100.0]
        );
        assert!(needs_reevaluation(0.0, 30.0));
        assert!(!needs_reevaluation(30.0, 30.25));
    }
}
