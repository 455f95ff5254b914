//! Integration tests: the USB-level rules the emulated transport enforces like nusb and the
//! kernel do (protocol/kernel.md) — IN lengths in whole packets, short packets, babble — through
//! the transport seam and through the device layer.

use std::time::{Duration, Instant};

use freek4a::device::{CommandFailure, DepthEngineChoice, Device, DeviceError, OpenOptions};
use freek4a::emulator::Speed;
use freek4a::emulator::{EmulatedBackend, EmulatorSpec, Fault, FaultRule, FaultTarget};
use freek4a::protocol::command::{
    Command, CommandError, DepthModeSet, HostTransaction, NvDataGet, ReadProductSerial, SensorMode,
    NV_DATA_BUFFER_LEN, SERIAL_BUFFER_LEN, STATUS_PACKET_LEN,
};
use freek4a::protocol::descriptors::{
    descriptor_type, Configuration, COLOR_MCU, DEPTH_MCU, EP_DEPTH_STREAM_IN, EP_IMU_STREAM_IN,
    PID_COLOR, PID_DEPTH,
};
use freek4a::protocol::payload::NvTag;
use freek4a::transport::{
    in_transfer_len, transfer_blocking, Backend, Completion, EndpointQueue, TransferError,
    UsbDevice, UsbInterface,
};
use freek4a::types::{ColorResolution, DepthMode, DeviceConfig, Fps, ImageFormat, Stream};

const T: Duration = Duration::from_secs(2);
const SERIAL: u32 = 0x115;

fn spec(faults: Vec<FaultRule>) -> EmulatorSpec {
    EmulatorSpec {
        units: 1,
        speed: Speed::Max,
        seed: 5,
        faults,
        ..Default::default()
    }
}

/// The opened function `product` of unit 0.
fn open_function(b: &EmulatedBackend, product: u16) -> Box<dyn UsbDevice> {
    let info = b
        .list()
        .unwrap()
        .into_iter()
        .find(|d| d.product_id == product)
        .unwrap();
    b.open(&info).unwrap()
}

/// The claimed vendor interface of `product` (depth: interface 0, colour: interface 2).
fn vendor_interface(b: &EmulatedBackend, product: u16) -> Box<dyn UsbInterface> {
    let mcu = if product == PID_DEPTH {
        DEPTH_MCU
    } else {
        COLOR_MCU
    };
    let number = mcu.interface.get();
    open_function(b, product)
        .claim_interface(number, false)
        .unwrap()
}

struct Channel {
    out: Box<dyn EndpointQueue>,
    inq: Box<dyn EndpointQueue>,
    id: u32,
}

impl Channel {
    fn depth(b: &EmulatedBackend) -> (Box<dyn UsbInterface>, Channel) {
        let i = vendor_interface(b, PID_DEPTH);
        let c = Channel {
            out: i.endpoint(DEPTH_MCU.command_out.address()).unwrap(),
            inq: i.endpoint(DEPTH_MCU.response_in.address()).unwrap(),
            id: 0,
        };
        (i, c)
    }

    fn send<C: Command>(&mut self, command: C) -> HostTransaction<C> {
        let t = HostTransaction::new(command, self.id).unwrap();
        self.id += 1;
        let p = t.out_packet();
        let n = p.len();
        assert_eq!(transfer_blocking(self.out.as_mut(), p, n, T).status, Ok(()));
        t
    }

    fn read(&mut self, length: usize) -> Completion {
        transfer_blocking(self.inq.as_mut(), Vec::new(), length, T)
    }
}

#[test]
fn endpoints_report_the_packet_size_of_their_descriptors() {
    let b = EmulatedBackend::new(spec(Vec::new()));
    for (product, mcu, stream) in [
        (PID_DEPTH, DEPTH_MCU, EP_DEPTH_STREAM_IN),
        (PID_COLOR, COLOR_MCU, EP_IMU_STREAM_IN),
    ] {
        let dev = open_function(&b, product);
        let config = dev.get_descriptor(descriptor_type::CONFIGURATION, 0, 0, T);
        let config = Configuration::decode(&config.unwrap()).unwrap();
        let interface = mcu.interface;
        let i = dev.claim_interface(interface.get(), false).unwrap();
        let endpoints = [
            mcu.command_out.address(),
            mcu.response_in.address(),
            stream.address(),
        ];
        for address in endpoints {
            let described = config
                .endpoints(interface)
                .iter()
                .find(|e| e.address == address)
                .map(|e| usize::from(e.max_packet_size))
                .unwrap();
            assert_eq!(described, 1024, "SuperSpeed bulk");
            assert_eq!(i.endpoint(address).unwrap().max_packet_size(), described);
        }
    }
}

/// What stopped every real camera at its first command: a 255-byte IN transfer on a
/// SuperSpeed bulk endpoint. The emulated transport refuses it as nusb does, with an error
/// that names the endpoint; whole packets get the answer, ended by a short packet.
#[test]
fn in_transfers_must_be_whole_packets_and_end_on_a_short_packet() {
    let b = EmulatedBackend::new(spec(Vec::new()));
    let (_i, mut ch) = Channel::depth(&b);
    let t = ch.send(ReadProductSerial);
    let refused = ch.read(SERIAL_BUFFER_LEN);
    let e = refused.status.unwrap_err();
    assert_eq!(
        e,
        TransferError::InvalidLength {
            endpoint: 0x81,
            requested: 255,
            max_packet_size: 1024
        }
    );
    assert!(e.to_string().contains("endpoint 0x81"), "{e}");
    assert!(refused.data.is_empty());
    // The device's answer is still waiting: read it in whole packets.
    let n = in_transfer_len(SERIAL_BUFFER_LEN, ch.inq.max_packet_size());
    assert_eq!(n, 1024);
    let data = ch.read(n);
    assert_eq!(data.status, Ok(()));
    let serial = b.serial(0).unwrap();
    assert_eq!(
        data.data.len(),
        serial.len() + 1,
        "short packet: serial and NUL"
    );
    assert_eq!(data.actual_len, data.data.len());
    // The status is a transfer of its own (the short packet ended the data phase).
    let status = ch.read(n);
    assert_eq!(status.data.len(), STATUS_PACKET_LEN);
    let mut t = t;
    t.accept_data(&data.data).unwrap();
    assert_eq!(t.finish(&status.data).unwrap().as_str(), serial);

    // NV_DATA_GET's 2,000,000-byte buffer is not whole packets either.
    let t = ch.send(DepthModeSet {
        mode: SensorMode::LongThrowNative,
    });
    let s = ch.read(1024);
    t.finish(&s.data).unwrap();
    let t = ch.send(NvDataGet {
        tag: NvTag::IrSensorCalibration,
    });
    assert!(matches!(
        ch.read(NV_DATA_BUFFER_LEN).status,
        Err(TransferError::InvalidLength {
            requested: 2_000_000,
            ..
        })
    ));
    let data = ch.read(in_transfer_len(NV_DATA_BUFFER_LEN, 1024));
    assert_eq!(data.status, Ok(()));
    assert!(data.data.len() > 4 && data.data.len() < NV_DATA_BUFFER_LEN);
    let mut t = t;
    t.accept_data(&data.data).unwrap();
    let s = ch.read(1024);
    assert_eq!(t.finish(&s.data).unwrap(), data.data);
}

/// The kernel itself takes any IN length (libusb's 255 bytes reach it as they are); a packet
/// longer than the room left is babble, EOVERFLOW.
#[test]
fn the_kernel_view_takes_any_length_and_babbles_on_a_too_small_buffer() {
    let oversized = FaultRule::once_after(0, FaultTarget::Command(SERIAL), Fault::Oversized, 1);
    let b = EmulatedBackend::new(spec(vec![oversized])).usbfs_view();
    let (_i, mut ch) = Channel::depth(&b);
    // First read: the serial fits in one short packet.
    ch.send(ReadProductSerial);
    let data = ch.read(SERIAL_BUFFER_LEN);
    assert_eq!(data.status, Ok(()));
    assert_eq!(data.data.len(), 13);
    assert_eq!(ch.read(SERIAL_BUFFER_LEN).data.len(), STATUS_PACKET_LEN);
    // Second: 2061 bytes; the first 1024-byte packet does not fit 255 bytes.
    ch.send(ReadProductSerial);
    let babble = ch.read(SERIAL_BUFFER_LEN);
    assert_eq!(babble.status, Err(TransferError::Overflow));
    assert!(babble.data.is_empty());
}

fn fast_raw() -> OpenOptions {
    OpenOptions {
        depth_engine: DepthEngineChoice::RawOnly,
        readiness_retry_delay: Some(Duration::from_millis(1)),
        ..Default::default()
    }
}

fn open_err(b: &EmulatedBackend) -> DeviceError {
    match Device::open_with(b, 0, fast_raw()) {
        Ok(_) => panic!("the unit opened"),
        Err(e) => e,
    }
}

fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(secs)).expect("no hang")
}

/// The device layer's reads are whole packets (this open fails on the emulator otherwise), and
/// a device that babbles gives a typed error naming the command.
#[test]
fn the_device_layer_reads_whole_packets_and_names_the_command_that_babbled() {
    within(60, || {
        let b = EmulatedBackend::new(spec(Vec::new()));
        let d = Device::open_with(&b, 0, fast_raw()).unwrap();
        assert_eq!(d.serial_number(), b.serial(0).unwrap());

        let babble = FaultRule::always(0, FaultTarget::Command(SERIAL), Fault::Babble);
        let b = EmulatedBackend::new(spec(vec![babble]));
        let e = open_err(&b);
        match &e {
            DeviceError::Command(CommandFailure::Transfer {
                command,
                phase: "data",
                source: TransferError::Overflow,
            }) => assert_eq!(command.code, SERIAL),
            e => panic!("{e}"),
        }
        let text = e.to_string();
        assert!(text.contains("READ_PRODUCT_SN"), "{text}");
        assert!(text.contains("EOVERFLOW"), "{text}");

        // More data than the command's buffer, in whole packets: not babble, but still more
        // than the 255 bytes the command asked for.
        let over = FaultRule::always(0, FaultTarget::Command(SERIAL), Fault::Oversized);
        let b = EmulatedBackend::new(spec(vec![over]));
        match open_err(&b) {
            DeviceError::Command(CommandFailure::Protocol(CommandError::DataOverflow {
                max: 255,
                ..
            })) => {}
            e => panic!("{e}"),
        }
    });
}

/// Babble on the depth and IMU endpoints costs the frame or packet, counted, and streaming
/// goes on.
#[test]
fn babble_on_the_streams_is_a_counted_drop() {
    within(60, || {
        let depth = FaultTarget::Stream(Stream::Depth);
        let imu = FaultTarget::Stream(Stream::Imu);
        let b = EmulatedBackend::new(spec(vec![
            FaultRule::once_after(0, depth, Fault::Babble, 2),
            FaultRule::once_after(0, imu, Fault::Babble, 3),
        ]));
        let mut d = Device::open_with(&b, 0, fast_raw()).unwrap();
        d.start_cameras(&DeviceConfig {
            color_format: ImageFormat::Mjpg,
            color_resolution: ColorResolution::R720p,
            depth_mode: DepthMode::NfovUnbinned,
            camera_fps: Fps::Fps30,
            ..Default::default()
        })
        .unwrap();
        d.start_imu().unwrap();
        let end = Instant::now() + Duration::from_secs(30);
        let (mut raws, mut imus) = (0, 0);
        while raws < 6 || imus < 100 {
            assert!(Instant::now() < end, "stream stalled: {:?}", d.drops());
            let _ = d.get_capture(Duration::from_millis(10)).unwrap();
            while let Ok(Some(_)) = d.get_raw_depth(Duration::ZERO) {
                raws += 1;
            }
            while let Ok(Some(_)) = d.get_imu_sample(Duration::ZERO) {
                imus += 1;
            }
        }
        let drops = d.drops();
        assert_eq!(drops.depth_invalid_size, 1, "{drops:?}");
        assert_eq!(drops.imu_malformed, 1, "{drops:?}");
        let _ = d.stop_imu();
        let _ = d.stop_cameras();
    });
}
