//! A physical model of the unit's IMU (an LSM6DSM): gravity along one axis, a slow rotation
//! rate, small noise and a slowly drifting temperature, sampled at 1666 Hz.
//!
//! The model keeps its ground truth in SI units so tests can compare what the host decodes
//! with what the "sensor" felt. Encoding to raw counts uses the sensitivities below; the
//! quantised value (what an ideal host decodes) is kept next to the physical one.

use super::Rng;

/// Nominal IMU sample rate.
pub const SAMPLE_RATE_HZ: u64 = 1666;
/// Gyro sensitivity in micro-degrees per second per LSB (LSM6DSM at ±2000 dps).
pub const GYRO_SENSITIVITY_UDPS: u16 = 61_000;
/// Accelerometer sensitivity in micro-g per LSB (LSM6DSM at ±16 g).
pub const ACCEL_SENSITIVITY_UG: u16 = 488;
/// Temperature sensitivity field as sent (unused by hosts).
pub const TEMPERATURE_SENSITIVITY: u16 = 256;
/// Temperature reporting period field as sent (unused by hosts).
pub const TEMPERATURE_PERIOD_USEC: u32 = 19_230;
/// Sample period field as sent (unused by hosts).
pub const SAMPLE_PERIOD_USEC: u32 = 600;

/// Standard gravity as the SDK bakes it in.
pub const G_MPS2: f64 = 9.81;

/// What the sensor felt at one sample instant, and what it reported.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ImuTruth {
    /// Sample time, 90 kHz device ticks.
    pub ticks: u64,
    /// Physical acceleration, m/s².
    pub acc_mps2: [f64; 3],
    /// Physical angular rate, rad/s.
    pub gyro_radps: [f64; 3],
    /// Raw accelerometer counts sent.
    pub acc_raw: [i16; 3],
    /// Raw gyro counts sent.
    pub gyro_raw: [i16; 3],
    /// Acceleration represented by `acc_raw`, m/s² (what an exact host decodes).
    pub acc_quantized_mps2: [f64; 3],
    /// Angular rate represented by `gyro_raw`, rad/s.
    pub gyro_quantized_radps: [f64; 3],
    /// Physical temperature, °C.
    pub temperature_c: f64,
    /// Raw temperature field of the packet (°C = raw / 256 + 15).
    pub temperature_raw: i16,
}

/// Parameters of the IMU model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ImuModel {
    /// Mean acceleration (gravity as the device sees it), m/s².
    pub gravity_mps2: [f64; 3],
    /// Mean angular rate, rad/s.
    pub rotation_radps: [f64; 3],
    /// Standard deviation of accelerometer noise, m/s².
    pub acc_noise_mps2: f64,
    /// Standard deviation of gyro noise, rad/s.
    pub gyro_noise_radps: f64,
    /// Temperature at sample 0, °C.
    pub start_temperature_c: f64,
    /// Temperature drift, °C per second.
    pub drift_c_per_s: f64,
}

impl Default for ImuModel {
    /// Lying flat and still, warming up slowly.
    fn default() -> Self {
        ImuModel {
            gravity_mps2: [0.0, 0.0, -G_MPS2],
            rotation_radps: [0.0, 0.0, 0.005],
            acc_noise_mps2: 0.02,
            gyro_noise_radps: 0.002,
            start_temperature_c: 31.0,
            drift_c_per_s: 0.01,
        }
    }
}

fn quantize(v: f64, lsb: f64) -> i16 {
    (v / lsb).round().clamp(i16::MIN as f64, i16::MAX as f64) as i16
}

impl ImuModel {
    /// One LSB of acceleration, m/s².
    pub fn acc_lsb_mps2() -> f64 {
        ACCEL_SENSITIVITY_UG as f64 * G_MPS2 / 1e6
    }

    /// One LSB of angular rate, rad/s.
    pub fn gyro_lsb_radps() -> f64 {
        GYRO_SENSITIVITY_UDPS as f64 * (std::f64::consts::PI / 180.0) / 1e6
    }

    /// The sample at `ticks`, `seconds` after the stream started.
    pub fn sample(&self, ticks: u64, seconds: f64, rng: &mut Rng) -> ImuTruth {
        let a_lsb = Self::acc_lsb_mps2();
        let g_lsb = Self::gyro_lsb_radps();
        let mut acc = [0.0; 3];
        let mut gyro = [0.0; 3];
        for i in 0..3 {
            acc[i] = self.gravity_mps2[i] + rng.gaussian() * self.acc_noise_mps2;
            gyro[i] = self.rotation_radps[i] + rng.gaussian() * self.gyro_noise_radps;
        }
        let acc_raw = acc.map(|v| quantize(v, a_lsb));
        let gyro_raw = gyro.map(|v| quantize(v, g_lsb));
        let temperature_c = self.start_temperature_c + self.drift_c_per_s * seconds;
        let temperature_raw = ((temperature_c - 15.0) * 256.0)
            .round()
            .clamp(i16::MIN as f64, i16::MAX as f64) as i16;
        ImuTruth {
            ticks,
            acc_mps2: acc,
            gyro_radps: gyro,
            acc_raw,
            gyro_raw,
            acc_quantized_mps2: acc_raw.map(|r| r as f64 * a_lsb),
            gyro_quantized_radps: gyro_raw.map(|r| r as f64 * g_lsb),
            temperature_c,
            temperature_raw,
        }
    }
}

/// Device tick of IMU sample `index` (1666 Hz on the 90 kHz clock, rounded).
pub fn sample_ticks(start_ticks: u64, index: u64) -> u64 {
    start_ticks + (index * 90_000 + SAMPLE_RATE_HZ / 2) / SAMPLE_RATE_HZ
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantised_values_are_within_half_an_lsb() {
        let m = ImuModel::default();
        let mut rng = Rng::new(7);
        for i in 0..100 {
            let s = m.sample(sample_ticks(0, i), i as f64 / 1666.0, &mut rng);
            for k in 0..3 {
                assert!(
                    (s.acc_quantized_mps2[k] - s.acc_mps2[k]).abs()
                        <= ImuModel::acc_lsb_mps2() / 2.0 + 1e-12
                );
                assert!(
                    (s.gyro_quantized_radps[k] - s.gyro_radps[k]).abs()
                        <= ImuModel::gyro_lsb_radps() / 2.0 + 1e-12
                );
            }
            assert!((s.acc_mps2[2] + G_MPS2).abs() < 0.2);
        }
        assert_eq!(sample_ticks(0, 1666), 90_000);
        assert_eq!(sample_ticks(0, 1), 54);
    }
}
